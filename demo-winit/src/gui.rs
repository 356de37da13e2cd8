//! The window: winit 0.30 for events, softbuffer for pixels, ab_glyph for
//! text, and braid's reactor in the same loop on the main thread through
//! `braid_winit::run_app`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ab_glyph::{Font, FontVec, PxScale, ScaleFont};
use braid::{
    Address, ClientFactory, CloseReason, ConnectError, Connector, Factory, Protocol, Reactor,
    ReconnectingClientFactory,
};
use winit::application::ApplicationHandler;
use winit::event::{ElementState, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::window::{Window, WindowId};

use crate::client::{CanvasClient, CanvasEvent};
use crate::picture::Picture;
use crate::proto::{Point, ServerMsg, CANVAS_H, CANVAS_W};
use crate::server::{CanvasServer, ServerConfig};

/// The status line's height, in logical pixels.
pub const STATUS_H: u32 = 28;
/// The pen width.
pub const PEN: u8 = 4;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server; `None` serves from this window.
    pub server: Option<SocketAddr>,
    /// Our name.
    pub name: String,
    /// Where the embedded server listens.
    pub listen: SocketAddr,
    /// Where the embedded server saves the picture.
    pub save: Option<PathBuf>,
    /// Print what the window draws (for tests).
    pub echo: bool,
}

struct Peer {
    name: String,
    colour: u32,
    cursor: Option<(u16, u16)>,
    moved: bool,
}

#[derive(Clone, PartialEq)]
enum Conn {
    Connecting,
    Connected,
    Reconnecting { delay: Duration, reason: String },
    Failed(String),
}

/// What the network and the window share (single-threaded: both run on
/// the main thread).
struct Model {
    me: Option<(u32, u32)>,
    peers: BTreeMap<u32, Peer>,
    picture: Picture,
    strokes: usize,
    conn: Conn,
    rtt: Option<Duration>,
    server: String,
    name: String,
    window: Option<Rc<Window>>,
    echo: bool,
    // Sending at most once per frame.
    pending_cursor: Option<(u16, u16)>,
    pending_points: Vec<Point>,
    last_sent: Option<Point>,
    flush_scheduled: bool,
    last_flush: Option<Instant>,
    frame: Duration,
}

impl Model {
    fn redraw(&self) {
        if let Some(w) = &self.window {
            w.request_redraw();
        }
    }

    fn echo(&self, line: String) {
        if self.echo {
            println!("{line}");
        }
    }

    fn status_text(&self) -> String {
        let users = self.peers.len();
        match &self.conn {
            Conn::Connecting => format!("connecting to {}…", self.server),
            Conn::Connected => {
                let rtt = self
                    .rtt
                    .map(|r| format!(" · round trip {:.2} ms", r.as_secs_f64() * 1e3))
                    .unwrap_or_default();
                format!(
                    "{} on {} · {users} user{} · {} strokes{rtt}",
                    self.name,
                    self.server,
                    if users == 1 { "" } else { "s" },
                    self.strokes
                )
            }
            Conn::Reconnecting { delay, reason } => {
                format!("reconnecting in {:.1} s ({reason})", delay.as_secs_f64())
            }
            Conn::Failed(r) => format!("failed: {r}"),
        }
    }

    fn set_conn(&mut self, c: Conn) {
        if self.conn != c {
            self.conn = c;
            let word = match &self.conn {
                Conn::Connecting => "connecting",
                Conn::Connected => "connected",
                Conn::Reconnecting { .. } => "reconnecting",
                Conn::Failed(_) => "failed",
            };
            self.echo(format!("status\t{word}\t{}", self.status_text()));
            self.redraw();
        }
    }

    fn on_event(&mut self, e: CanvasEvent) {
        match e {
            CanvasEvent::Welcome { id, colour } => {
                self.me = Some((id, colour));
                // A (re)connection brings the whole picture again.
                self.picture.clear();
                self.strokes = 0;
                self.peers.clear();
                self.last_sent = None;
                self.echo(format!("welcome\t{id}\t{colour:06x}"));
            }
            CanvasEvent::Message(m) => self.on_message(m),
            CanvasEvent::ProtocolError(e) => {
                tracing::warn!(error = %e, "canvas server");
                self.echo(format!("error\t{e}"));
            }
            CanvasEvent::Disconnected(reason) => {
                tracing::info!(%reason, "disconnected");
                self.peers.clear();
            }
        }
        self.redraw();
    }

    fn on_message(&mut self, m: ServerMsg) {
        match m {
            ServerMsg::Joined { id, colour, name } => {
                self.peers.insert(
                    id,
                    Peer {
                        name,
                        colour,
                        cursor: None,
                        moved: false,
                    },
                );
            }
            ServerMsg::Left { id } => {
                self.peers.remove(&id);
            }
            ServerMsg::Cursor { id, x, y } => {
                self.echo(format!(
                    "cursor-received\t{id}\t{x}\t{y}\t{}",
                    unix_micros()
                ));
                if let Some(p) = self.peers.get_mut(&id) {
                    p.cursor = Some((x, y));
                    p.moved = true;
                }
            }
            ServerMsg::Stroke {
                id,
                colour,
                width,
                points,
            } => {
                self.picture.stroke(&points, width, colour);
                self.strokes += 1;
                self.echo(format!("stroke\t{id}\t{}\t{}", points.len(), self.strokes));
            }
            ServerMsg::Pong { token } => {
                let sent = Duration::from_micros(token);
                self.rtt = Some(mono_now().saturating_sub(sent));
            }
            ServerMsg::Ready => {
                self.set_conn(Conn::Connected);
                self.echo(format!("ready\t{}", self.strokes));
            }
            ServerMsg::Error { code, text } => {
                tracing::warn!(code, %text, "the canvas server says");
                self.echo(format!("error\t{code}\t{text}"));
            }
            ServerMsg::Welcome { .. } => {}
        }
    }
}

/// Microseconds on a monotonic clock, as ping tokens.
fn mono_now() -> Duration {
    thread_local!(static START: Instant = Instant::now());
    START.with(|s| s.elapsed())
}

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Reports attempts to the model around the reconnecting factory.
struct StatusFactory<F> {
    inner: ReconnectingClientFactory<F>,
    model: Rc<RefCell<Model>>,
}

impl<F: ClientFactory> Factory for StatusFactory<F> {
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>> {
        self.inner.build_protocol(addr)
    }
}

impl<F: ClientFactory> StatusFactory<F> {
    fn ended(&self, reason: String) {
        let c = if self.inner.is_retry_pending() {
            Conn::Reconnecting {
                delay: self.inner.current_delay(),
                reason,
            }
        } else {
            Conn::Failed(reason)
        };
        self.model.borrow_mut().set_conn(c);
    }
}

impl<F: ClientFactory> ClientFactory for StatusFactory<F> {
    fn started_connecting(&mut self, connector: &Connector) {
        self.inner.started_connecting(connector);
        if !matches!(self.model.borrow().conn, Conn::Reconnecting { .. }) {
            self.model.borrow_mut().set_conn(Conn::Connecting);
        }
    }
    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        self.inner.client_connection_failed(connector, reason);
        self.ended(reason.to_string());
    }
    fn client_connection_lost(&mut self, connector: &Connector, reason: &CloseReason) {
        self.inner.client_connection_lost(connector, reason);
        self.ended(format!("connection lost: {reason}"));
    }
}

/// Fonts tried in turn (`BRAID_FONT` first).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

fn load_font() -> Option<FontVec> {
    let env = std::env::var("BRAID_FONT").ok();
    for path in env.iter().map(String::as_str).chain(FONTS.iter().copied()) {
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(f) = FontVec::try_from_vec(bytes) {
                return Some(f);
            }
        }
    }
    tracing::warn!(
        "no font found (set BRAID_FONT to a .ttf file); names and the status line are not drawn"
    );
    None
}

fn blend(dst: u32, src: u32, a: f32) -> u32 {
    let a = a.clamp(0.0, 1.0);
    let ch = |shift: u32| {
        let (d, s) = (
            ((dst >> shift) & 0xff) as f32,
            ((src >> shift) & 0xff) as f32,
        );
        ((d + (s - d) * a).round() as u32) << shift
    };
    ch(16) | ch(8) | ch(0)
}

/// A softbuffer frame with drawing helpers.
struct Canvas<'a> {
    buf: &'a mut [u32],
    w: usize,
    h: usize,
}

impl Canvas<'_> {
    fn rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, c: u32) {
        for y in y0.max(0)..y1.min(self.h as i32) {
            for x in x0.max(0)..x1.min(self.w as i32) {
                self.buf[y as usize * self.w + x as usize] = c;
            }
        }
    }

    fn text(&mut self, font: &FontVec, size: f32, x: f32, baseline: f32, text: &str, colour: u32) {
        let scaled = font.as_scaled(PxScale::from(size));
        let mut caret = x;
        let mut last = None;
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            if let Some(prev) = last {
                caret += scaled.kern(prev, id);
            }
            let glyph = id.with_scale_and_position(size, ab_glyph::point(caret, baseline));
            caret += scaled.h_advance(id);
            last = Some(id);
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                let (w, h) = (self.w as i32, self.h as i32);
                let buf = &mut *self.buf;
                outline.draw(|gx, gy, cov| {
                    let (px, py) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                    if px >= 0 && py >= 0 && px < w && py < h {
                        let i = py as usize * w as usize + px as usize;
                        buf[i] = blend(buf[i], colour, cov);
                    }
                });
            }
        }
    }

    fn cursor(&mut self, x: i32, y: i32, colour: u32) {
        // An arrow: a filled triangle with a white rim.
        for dy in 0..14 {
            for dx in 0..=dy / 2 + 1 {
                let c = if dx == 0 || dx == dy / 2 + 1 || dy == 13 {
                    0x00ff_ffff
                } else {
                    colour
                };
                let (px, py) = (x + dx, y + dy);
                if px >= 0 && py >= 0 && (px as usize) < self.w && (py as usize) < self.h {
                    self.buf[py as usize * self.w + px as usize] = c;
                }
            }
        }
    }
}

struct App {
    reactor: Reactor,
    model: Rc<RefCell<Model>>,
    client: CanvasClient,
    window: Option<Rc<Window>>,
    surface: Option<softbuffer::Surface<Rc<Window>, Rc<Window>>>,
    font: Option<FontVec>,
    drawing: bool,
    scale: f64,
    shown: bool,
    redraws: Rc<Cell<u64>>,
}

impl App {
    fn to_canvas(&self, x: f64, y: f64) -> Option<Point> {
        let (x, y) = (x / self.scale, y / self.scale);
        (x >= 0.0 && y >= 0.0 && x < f64::from(CANVAS_W) && y < f64::from(CANVAS_H))
            .then_some((x as u16, y as u16))
    }

    /// Sends what the pointer did since the last frame, once per frame.
    fn schedule_flush(&self) {
        let mut m = self.model.borrow_mut();
        if m.flush_scheduled {
            return;
        }
        m.flush_scheduled = true;
        // At once if the last send was a frame ago or more, else when the
        // frame is up: never more often than the display refreshes.
        let now = self.reactor.now();
        let delay = m.last_flush.map_or(Duration::ZERO, |t| {
            (t + m.frame).saturating_duration_since(now)
        });
        drop(m);
        let (model, client, reactor) = (
            self.model.clone(),
            self.client.clone(),
            self.reactor.clone(),
        );
        self.reactor.call_later(delay, move || {
            let (cursor, points) = {
                let mut m = model.borrow_mut();
                m.flush_scheduled = false;
                m.last_flush = Some(reactor.now());
                let mut pts = Vec::new();
                if !m.pending_points.is_empty() {
                    pts.extend(m.last_sent);
                    pts.append(&mut m.pending_points);
                    m.last_sent = pts.last().copied();
                }
                (m.pending_cursor.take(), pts)
            };
            if let Some((x, y)) = cursor {
                client.cursor(x, y);
                let m = model.borrow();
                if m.echo {
                    println!("cursor-sent\t{x}\t{y}\t{}", unix_micros());
                }
            }
            if !points.is_empty() {
                client.stroke(PEN, &points);
            }
        });
    }

    fn draw(&mut self) {
        let started = Instant::now();
        let (Some(window), Some(surface)) = (&self.window, &mut self.surface) else {
            return;
        };
        let size = window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return;
        };
        if let Err(e) = surface.resize(w, h) {
            tracing::warn!(error = %e, "cannot resize the surface");
            return;
        }
        let mut buffer = match surface.buffer_mut() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no buffer to draw in");
                return;
            }
        };
        let (w, h) = (w.get() as usize, h.get() as usize);
        let mut m = self.model.borrow_mut();
        let scale = self.scale;
        let canvas_h = ((f64::from(CANVAS_H) * scale) as usize).min(h);
        {
            // The picture, scaled to the window's pixels (nearest): a
            // straight row copy at scale 1, a column map computed once
            // per frame otherwise.
            let pic = &m.picture;
            let cols: Vec<Option<usize>> = (0..w)
                .map(|x| Some((x as f64 / scale) as usize).filter(|&sx| sx < pic.width()))
                .collect();
            let unscaled = scale == 1.0 && w >= pic.width();
            for y in 0..canvas_h {
                let sy = ((y as f64 / scale) as usize).min(pic.height() - 1);
                let src = &pic.pixels()[sy * pic.width()..(sy + 1) * pic.width()];
                let row = &mut buffer[y * w..(y + 1) * w];
                if unscaled {
                    row[..src.len()].copy_from_slice(src);
                    row[src.len()..].fill(0x00e0_e0e0);
                } else {
                    for (px, col) in row.iter_mut().zip(&cols) {
                        *px = col.map_or(0x00e0_e0e0, |sx| src[sx]);
                    }
                }
            }
        }
        let mut c = Canvas {
            buf: &mut buffer,
            w,
            h,
        };
        c.rect(0, canvas_h as i32, w as i32, h as i32, 0x00ec_eff1);
        c.rect(
            0,
            canvas_h as i32,
            w as i32,
            canvas_h as i32 + 1,
            0x00b0_bec5,
        );
        let me = m.me.map(|(id, _)| id);
        let mut moved = Vec::new();
        for (id, p) in m.peers.iter_mut() {
            if Some(*id) == me {
                continue;
            }
            if let Some((x, y)) = p.cursor {
                let (px, py) = ((f64::from(x) * scale) as i32, (f64::from(y) * scale) as i32);
                c.cursor(px, py, p.colour);
                if let Some(font) = &self.font {
                    c.text(
                        font,
                        13.0 * scale as f32,
                        px as f32 + 12.0,
                        py as f32 + 22.0,
                        &p.name,
                        p.colour,
                    );
                }
                if p.moved {
                    p.moved = false;
                    moved.push((*id, x, y));
                }
            }
        }
        if let Some(font) = &self.font {
            let status = m.status_text();
            let colour = match m.conn {
                Conn::Connected => 0x0026_3238,
                Conn::Failed(_) => 0x00c6_2828,
                _ => 0x00b2_6a00,
            };
            c.text(
                font,
                14.0 * scale as f32,
                8.0,
                canvas_h as f32 + 19.0 * scale as f32,
                &status,
                colour,
            );
        }
        if let Err(e) = buffer.present() {
            tracing::warn!(error = %e, "cannot present");
        }
        self.redraws.set(self.redraws.get() + 1);
        if m.echo {
            let t = unix_micros();
            for (id, x, y) in moved {
                println!("cursor-drawn\t{id}\t{x}\t{y}\t{t}");
            }
            if !self.shown {
                self.shown = true;
                println!("window\tshown\t{w}x{h}");
            }
            println!(
                "redraw\t{}\t{}\t{}",
                self.redraws.get(),
                m.strokes,
                started.elapsed().as_micros()
            );
        }
        m.window = Some(window.clone());
    }
}

impl ApplicationHandler for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let name = self.model.borrow().name.clone();
        let attrs = Window::default_attributes()
            .with_title(format!("braid canvas: {name}"))
            .with_resizable(false)
            .with_inner_size(winit::dpi::LogicalSize::new(
                f64::from(CANVAS_W),
                f64::from(u32::from(CANVAS_H) + STATUS_H),
            ));
        let window = match event_loop.create_window(attrs) {
            Ok(w) => Rc::new(w),
            Err(e) => {
                eprintln!("demo-winit: cannot open a window: {e}");
                event_loop.exit();
                return;
            }
        };
        self.scale = window.scale_factor();
        let surface = softbuffer::Context::new(window.clone())
            .and_then(|ctx| softbuffer::Surface::new(&ctx, window.clone()));
        match surface {
            Ok(s) => self.surface = Some(s),
            Err(e) => {
                eprintln!("demo-winit: cannot draw in the window: {e}");
                event_loop.exit();
                return;
            }
        }
        // Pointer moves go out at most once per display frame.
        let mhz = window
            .current_monitor()
            .and_then(|m| m.refresh_rate_millihertz())
            .filter(|&r| r >= 1000)
            .unwrap_or(60_000);
        {
            let mut m = self.model.borrow_mut();
            m.frame = Duration::from_secs_f64(1000.0 / f64::from(mhz));
            m.window = Some(window.clone());
        }
        tracing::info!(
            refresh_hz = f64::from(mhz) / 1000.0,
            "pointer updates at most once per frame"
        );
        window.request_redraw();
        self.window = Some(window);
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::KeyboardInput { event, .. } => {
                use winit::keyboard::{Key, NamedKey};
                if event.state == ElementState::Pressed
                    && matches!(event.logical_key, Key::Named(NamedKey::Escape))
                {
                    event_loop.exit();
                }
            }
            WindowEvent::ScaleFactorChanged { scale_factor, .. } => self.scale = scale_factor,
            WindowEvent::RedrawRequested => self.draw(),
            WindowEvent::CursorMoved { position, .. } => {
                let Some(p) = self.to_canvas(position.x, position.y) else {
                    return;
                };
                {
                    let mut m = self.model.borrow_mut();
                    m.pending_cursor = Some(p);
                    if self.drawing {
                        let colour = m.me.map(|(_, c)| c).unwrap_or(0);
                        let from = m
                            .pending_points
                            .last()
                            .copied()
                            .or(m.last_sent)
                            .unwrap_or(p);
                        m.picture.stroke(&[from, p], PEN, colour);
                        m.pending_points.push(p);
                        m.redraw();
                    }
                }
                self.schedule_flush();
            }
            WindowEvent::MouseInput {
                state,
                button: MouseButton::Left,
                ..
            } => {
                self.drawing = state == ElementState::Pressed;
                let mut m = self.model.borrow_mut();
                if self.drawing {
                    // A new stroke: not joined to the last one.
                    m.last_sent = None;
                    if let Some(p) = m.pending_cursor {
                        m.pending_points.push(p);
                    }
                }
                drop(m);
                self.schedule_flush();
            }
            _ => {}
        }
    }
}

/// Opens the window and runs until it closes.
///
/// # Errors
///
/// If the event loop, the reactor or the embedded server cannot start.
pub fn run(opts: Options) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let mut _server = None;
    let target = match opts.server {
        Some(a) => a,
        None => {
            let cfg = ServerConfig {
                save: opts.save.clone(),
                ..Default::default()
            };
            let server = CanvasServer::new(&reactor, cfg)?;
            let port = server.listen(opts.listen)?;
            let mut addr = port.local_addr();
            println!(
                "braid demo-winit: serving the canvas on {addr} (others join with: cargo run -p demo-winit -- {addr})"
            );
            if addr.ip().is_unspecified() {
                addr.set_ip([127, 0, 0, 1].into());
            }
            _server = Some((server, port));
            addr
        }
    };
    let model = Rc::new(RefCell::new(Model {
        me: None,
        peers: BTreeMap::new(),
        picture: Picture::new(usize::from(CANVAS_W), usize::from(CANVAS_H)),
        strokes: 0,
        conn: Conn::Connecting,
        rtt: None,
        server: target.to_string(),
        name: opts.name.clone(),
        window: None,
        echo: opts.echo,
        pending_cursor: None,
        pending_points: Vec::new(),
        last_sent: None,
        flush_scheduled: false,
        last_flush: None,
        frame: Duration::from_millis(16),
    }));
    let m = model.clone();
    let client = CanvasClient::new(&opts.name, move |_, e| m.borrow_mut().on_event(e));
    let factory = StatusFactory {
        inner: ReconnectingClientFactory::new(client.factory())
            .initial_delay(Duration::from_millis(500))
            .max_delay(Duration::from_secs(10)),
        model: model.clone(),
    };
    reactor.connect_tcp(target, factory, Some(Duration::from_secs(5)));

    // The round trip, every two seconds (the Pong redraws the status).
    fn ping(r: Reactor, c: CanvasClient) {
        c.ping(mono_now().as_micros() as u64);
        let r2 = r.clone();
        r.call_later(Duration::from_secs(2), move || ping(r2, c));
    }
    ping(reactor.clone(), client.clone());

    let mut event_loop = EventLoop::new()?;
    let mut app = App {
        reactor: reactor.clone(),
        model,
        client,
        window: None,
        surface: None,
        font: load_font(),
        drawing: false,
        scale: 1.0,
        shown: false,
        redraws: Rc::new(Cell::new(0)),
    };
    let exit = braid_winit::run_app(&mut event_loop, &reactor, &mut app)?;
    tracing::info!(?exit, redraws = app.redraws.get(), "the window closed");
    Ok(())
}
