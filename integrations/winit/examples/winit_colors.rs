//! A winit window that changes colour on each message from a TCP server,
//! the network running in the same loop on the main thread.
//!
//! ```text
//! cargo run -p braid-winit --example winit_colors                  (serves its own messages)
//! cargo run -p braid-winit --example winit_colors -- 127.0.0.1:7000 (lines from another server)
//! ```
//!
//! Each line received picks the next colour; `--quit-after N` stops after N
//! messages (used by the tests). Each colour shown is printed to stdout.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::Duration;

use braid::framing::{LineContext, LineHandler, LineReceiver};
use braid::{Address, Protocol, Reactor, ReconnectingClientFactory, Transport};
use winit::application::ApplicationHandler;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::window::{Window, WindowId};

const COLORS: [(u32, &str); 6] = [
    (0x00d0_3c3c, "red"),
    (0x00e0_a030, "orange"),
    (0x0030_b050, "green"),
    (0x0030_80e0, "blue"),
    (0x0080_40c0, "purple"),
    (0x0020_a0a0, "teal"),
];

/// What the network tells the window: the index of the colour to show.
type Shared = Rc<Cell<usize>>;

struct Painter {
    window: Option<Rc<Window>>,
    surface: Option<softbuffer::Surface<Rc<Window>, Rc<Window>>>,
    color: Shared,
    window_slot: Rc<RefCell<Option<Rc<Window>>>>,
}

impl ApplicationHandler for Painter {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let attrs = Window::default_attributes()
            .with_title("braid: a colour per message")
            .with_inner_size(winit::dpi::LogicalSize::new(360.0, 240.0));
        let window = Rc::new(event_loop.create_window(attrs).expect("a window"));
        let context = softbuffer::Context::new(window.clone()).expect("a softbuffer context");
        self.surface = Some(softbuffer::Surface::new(&context, window.clone()).expect("a surface"));
        *self.window_slot.borrow_mut() = Some(window.clone());
        self.window = Some(window);
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::RedrawRequested => {
                let (Some(window), Some(surface)) = (&self.window, &mut self.surface) else {
                    return;
                };
                let size = window.inner_size();
                let (Some(w), Some(h)) =
                    (NonZeroU32::new(size.width), NonZeroU32::new(size.height))
                else {
                    return;
                };
                surface.resize(w, h).expect("resize");
                let mut buffer = surface.buffer_mut().expect("a buffer");
                buffer.fill(COLORS[self.color.get() % COLORS.len()].0);
                buffer.present().expect("present");
            }
            _ => {}
        }
    }
}

/// Each line from the server moves to the next colour and asks for a redraw.
struct NextColor {
    color: Shared,
    window: Rc<RefCell<Option<Rc<Window>>>>,
    seen: u32,
    quit_after: Option<u32>,
}

impl LineHandler for NextColor {
    fn line_received(&mut self, ctx: &mut LineContext<'_>, _line: &[u8]) {
        self.color.set(self.color.get() + 1);
        self.seen += 1;
        println!("{}", COLORS[self.color.get() % COLORS.len()].1);
        if let Some(w) = &*self.window.borrow() {
            w.request_redraw();
        }
        if self.quit_after == Some(self.seen) {
            if let Some(r) = ctx.transport().reactor() {
                r.stop();
            }
        }
    }
}

/// Sends a line every 300 ms to whoever connects.
struct Ticker(Reactor);

impl Protocol for Ticker {
    fn connection_made(&mut self, t: &Transport) {
        fn tick(r: Reactor, t: Transport, n: u32) {
            if t.is_closed() {
                return;
            }
            t.write(format!("message {n}\n").as_bytes());
            let r2 = r.clone();
            r.call_later(Duration::from_millis(300), move || tick(r2, t, n + 1));
        }
        tick(self.0.clone(), t.clone(), 1);
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut quit_after) = (None::<SocketAddr>, None);
    while let Some(a) = args.next() {
        if a == "--quit-after" {
            quit_after = args.next().and_then(|n| n.parse().ok());
        } else {
            addr = Some(a.parse()?);
        }
    }
    let reactor = Reactor::new()?;
    let target = match addr {
        Some(a) => a,
        None => {
            let r = reactor.clone();
            reactor
                .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                    Ticker(r.clone())
                })?
                .local_addr()
        }
    };
    let color = Shared::default();
    let window_slot = Rc::new(RefCell::new(None));
    let (c, w) = (color.clone(), window_slot.clone());
    let factory = ReconnectingClientFactory::new(move |_: &Address| {
        LineReceiver::with_delimiter(
            NextColor {
                color: c.clone(),
                window: w.clone(),
                seen: 0,
                quit_after,
            },
            b"\n",
            4096,
        )
    });
    reactor.connect_tcp(target, factory, Some(Duration::from_secs(5)));

    let mut event_loop = EventLoop::new()?;
    let mut app = Painter {
        window: None,
        surface: None,
        color,
        window_slot,
    };
    let end = braid_winit::run_app(&mut event_loop, &reactor, &mut app)?;
    eprintln!("loop ended: {end:?}");
    Ok(())
}
