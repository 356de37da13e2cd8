//! A GTK4 window whose label shows each line received from a TCP server,
//! with the network on GTK's own thread and loop.
//!
//! ```text
//! cargo run -p braid-glib --example gtk_lines                   (serves its own lines)
//! cargo run -p braid-glib --example gtk_lines -- 127.0.0.1:7000 (shows another server's)
//! ```
//!
//! `--quit-after N` closes the window after N lines (used by the tests);
//! every line shown is also printed to stdout.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::framing::{LineContext, LineHandler, LineReceiver};
use braid::{Address, Reactor, ReconnectingClientFactory};
use gtk4::prelude::*;

/// Puts each line into the label.
struct ToLabel {
    label: gtk4::Label,
    count: Rc<Cell<u32>>,
    quit_after: Option<u32>,
    reactor: Reactor,
}

impl LineHandler for ToLabel {
    fn line_received(&mut self, _ctx: &mut LineContext<'_>, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        self.label.set_text(&text);
        println!("{text}");
        self.count.set(self.count.get() + 1);
        if self.quit_after == Some(self.count.get()) {
            self.reactor.stop();
        }
    }
}

/// A tiny server that sends a numbered line every 200 ms.
fn serve_lines(reactor: &Reactor) -> std::io::Result<SocketAddr> {
    let r = reactor.clone();
    let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
        struct Ticker {
            n: Rc<Cell<u32>>,
            r: Reactor,
        }
        impl braid::Protocol for Ticker {
            fn connection_made(&mut self, t: &braid::Transport) {
                fn tick(r: Reactor, t: braid::Transport, n: Rc<Cell<u32>>) {
                    if t.is_closed() {
                        return;
                    }
                    n.set(n.get() + 1);
                    t.write(format!("line {} from the braid server\n", n.get()).as_bytes());
                    let r2 = r.clone();
                    r.call_later(Duration::from_millis(200), move || tick(r2, t, n));
                }
                tick(self.r.clone(), t.clone(), self.n.clone());
            }
            fn data_received(&mut self, _: &braid::Transport, _: &[u8]) {}
        }
        Ticker {
            n: Rc::new(Cell::new(0)),
            r: r.clone(),
        }
    })?;
    Ok(port.local_addr())
}

fn main() -> glib::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut addr: Option<SocketAddr> = None;
    let mut quit_after = None;
    while let Some(a) = args.next() {
        if a == "--quit-after" {
            quit_after = args.next().and_then(|n| n.parse().ok());
        } else {
            addr = Some(a.parse().expect("an address like 127.0.0.1:7000"));
        }
    }
    let app = gtk4::Application::builder()
        .application_id("org.braid.GtkLines")
        .build();
    let keep: Rc<RefCell<Option<braid_glib::Attached>>> = Rc::default();
    app.connect_activate(move |app| {
        let label = gtk4::Label::new(Some("connecting..."));
        label.set_margin_top(24);
        label.set_margin_bottom(24);
        label.set_margin_start(24);
        label.set_margin_end(24);
        let window = gtk4::ApplicationWindow::builder()
            .application(app)
            .title("braid: lines over TCP, on GTK's thread")
            .default_width(420)
            .child(&label)
            .build();
        window.present();

        let reactor = Reactor::new().expect("a reactor");
        let attached = braid_glib::attach(&reactor, &glib::MainContext::default()).expect("attach");
        let a = app.clone();
        attached.on_stop(move || a.quit());
        let target = addr.unwrap_or_else(|| serve_lines(&reactor).expect("serve"));
        let count = Rc::new(Cell::new(0));
        let (l, r) = (label.clone(), reactor.clone());
        let factory = ReconnectingClientFactory::new(move |_: &Address| {
            LineReceiver::with_delimiter(
                ToLabel {
                    label: l.clone(),
                    count: count.clone(),
                    quit_after,
                    reactor: r.clone(),
                },
                b"\n",
                4096,
            )
        });
        reactor.connect_tcp(target, factory, Some(Duration::from_secs(5)));
        // Closing the window stops the reactor cleanly.
        let r = reactor.clone();
        window.connect_close_request(move |_| {
            r.stop();
            glib::Propagation::Proceed
        });
        *keep.borrow_mut() = Some(attached);
    });
    app.run_with_args::<&str>(&[])
}
