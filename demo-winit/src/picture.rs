//! The canvas as pixels: strokes drawn into a 0RGB buffer the size of the
//! canvas, kept between frames so a redraw copies it rather than drawing
//! every stroke again.

use crate::proto::Point;

/// The background.
pub const PAPER: u32 = 0x00ff_ffff;

/// A canvas-sized pixel buffer (0x00RRGGBB, row-major).
#[derive(Clone)]
pub struct Picture {
    width: usize,
    height: usize,
    pixels: Vec<u32>,
}

impl Picture {
    /// A blank picture.
    pub fn new(width: usize, height: usize) -> Picture {
        Picture {
            width,
            height,
            pixels: vec![PAPER; width * height],
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, row by row.
    pub fn pixels(&self) -> &[u32] {
        &self.pixels
    }

    /// The pixel at `(x, y)`, if inside.
    pub fn get(&self, x: usize, y: usize) -> Option<u32> {
        (x < self.width && y < self.height).then(|| self.pixels[y * self.width + x])
    }

    /// Back to blank paper.
    pub fn clear(&mut self) {
        self.pixels.fill(PAPER);
    }

    fn dot(&mut self, cx: i32, cy: i32, r: i32, colour: u32) {
        for dy in -r..=r {
            for dx in -r..=r {
                if dx * dx + dy * dy > r * r + r {
                    continue;
                }
                let (x, y) = (cx + dx, cy + dy);
                if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
                    self.pixels[y as usize * self.width + x as usize] = colour;
                }
            }
        }
    }

    /// Draws a polyline `width` pixels wide.
    pub fn stroke(&mut self, points: &[Point], width: u8, colour: u32) {
        let r = (i32::from(width.max(1)) - 1) / 2;
        let Some(&(x0, y0)) = points.first() else {
            return;
        };
        let (mut px, mut py) = (i32::from(x0), i32::from(y0));
        self.dot(px, py, r, colour);
        for &(x, y) in &points[1..] {
            let (x, y) = (i32::from(x), i32::from(y));
            // Bresenham, stamping a disc at each step.
            let (dx, dy) = ((x - px).abs(), -(y - py).abs());
            let (sx, sy) = (if px < x { 1 } else { -1 }, if py < y { 1 } else { -1 });
            let mut err = dx + dy;
            let (mut cx, mut cy) = (px, py);
            loop {
                self.dot(cx, cy, r, colour);
                if cx == x && cy == y {
                    break;
                }
                let e2 = 2 * err;
                if e2 >= dy {
                    err += dy;
                    cx += sx;
                }
                if e2 <= dx {
                    err += dx;
                    cy += sy;
                }
            }
            (px, py) = (x, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_covers_its_pixels_and_nothing_far_from_it() {
        let mut p = Picture::new(100, 50);
        p.stroke(&[(10, 10), (90, 10)], 3, 0x00ff_0000);
        for x in 10..=90 {
            assert_eq!(p.get(x, 10), Some(0x00ff_0000), "x={x}");
            assert_eq!(p.get(x, 11), Some(0x00ff_0000), "3 px wide at x={x}");
        }
        assert_eq!(p.get(50, 20), Some(PAPER));
        p.stroke(&[(0, 0), (99, 49)], 1, 0x0000_00ff);
        assert_eq!(p.get(0, 0), Some(0x0000_00ff));
        assert_eq!(p.get(99, 49), Some(0x0000_00ff));
        // Off the edges: clipped, no panic.
        p.stroke(&[(95, 45), (99, 49)], 32, 1);
        p.clear();
        assert!(p.pixels().iter().all(|&c| c == PAPER));
    }
}
