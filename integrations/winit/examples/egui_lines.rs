//! An egui window (eframe on winit 0.30) that shows the lines a TCP server
//! sends and sends what is typed, with the network on winit's thread:
//! eframe's `create_native` hands over its `ApplicationHandler`, and
//! `braid_winit::run_app` runs it together with the reactor. No tokio, no
//! second thread, no channel.
//!
//! ```text
//! cargo run -p braid-winit --example egui_lines                   (talks to its own server)
//! cargo run -p braid-winit --example egui_lines -- 127.0.0.1:7000 (talks to another one)
//! ```
//!
//! The embedded server greets, then answers each line with `echo: LINE`.
//! Every line shown is printed to stdout as `shown: LINE`, every line sent
//! as `sent: LINE`; `--quit-after N` stops the reactor (and the window)
//! once N lines have been shown. The tests use both.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::framing::{LineContext, LineHandler, LineReceiver};
use braid::{Address, Reactor, Transport};
use eframe::egui;
use winit::event_loop::EventLoop;

/// What the window and the protocol share (one thread: an `Rc`).
#[derive(Default)]
struct Chat {
    shown: Vec<String>,
    status: String,
    transport: Option<Transport>,
    /// egui's context, to ask for a repaint when a line arrives.
    egui: Option<egui::Context>,
}

struct ToWindow {
    chat: Rc<RefCell<Chat>>,
    quit_after: Option<usize>,
    reactor: Reactor,
}

impl ToWindow {
    fn repaint(&self) {
        if let Some(ctx) = &self.chat.borrow().egui {
            ctx.request_repaint();
        }
    }
}

impl LineHandler for ToWindow {
    fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
        let mut chat = self.chat.borrow_mut();
        chat.transport = Some(ctx.transport().clone());
        chat.status = "connected".into();
        drop(chat);
        self.repaint();
    }

    fn line_received(&mut self, _: &mut LineContext<'_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        println!("shown: {line}");
        let n = {
            let mut chat = self.chat.borrow_mut();
            chat.shown.push(line);
            chat.shown.len()
        };
        self.repaint();
        if self.quit_after == Some(n) {
            self.reactor.stop();
        }
    }

    fn connection_lost(&mut self, reason: &braid::CloseReason) {
        let mut chat = self.chat.borrow_mut();
        chat.transport = None;
        chat.status = format!("disconnected: {reason}");
        drop(chat);
        self.repaint();
    }
}

/// The egui side: draws the shared state, sends the input line on Enter.
struct Window {
    chat: Rc<RefCell<Chat>>,
    input: String,
    want_focus: bool,
}

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _: &mut eframe::Frame) {
        let chat = self.chat.clone();
        egui::CentralPanel::default().show(ui, |ui| {
            ui.label(&chat.borrow().status);
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.input)
                    .hint_text("type a line, Enter sends it")
                    .desired_width(f32::INFINITY),
            );
            if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                self.want_focus = true;
                let line = std::mem::take(&mut self.input);
                if let Some(t) = &chat.borrow().transport {
                    if !line.is_empty() {
                        t.write(format!("{line}\n").as_bytes());
                        println!("sent: {line}");
                    }
                }
            }
            // Typing goes to the field without a click: focus it on the
            // first frame and after each Enter. (Asking every frame that it
            // lacks focus makes egui repaint without end while the window
            // has no keyboard focus, and winit's pump never returns.)
            if self.want_focus {
                field.request_focus();
                self.want_focus = false;
            }
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                for line in &chat.borrow().shown {
                    ui.label(line);
                }
            });
        });
    }
}

/// The embedded server: a greeting, then `echo: LINE` for each line.
fn serve(reactor: &Reactor) -> std::io::Result<SocketAddr> {
    struct Echo;
    impl LineHandler for Echo {
        fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
            ctx.send_line(b"hello from the braid server: type a line and press Enter");
        }
        fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
            ctx.send_line(&[b"echo: ".as_slice(), line].concat());
        }
    }
    let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| {
        LineReceiver::with_delimiter(Echo, b"\n", 4096)
    })?;
    Ok(port.local_addr())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut addr: Option<SocketAddr> = None;
    let mut quit_after = None;
    while let Some(a) = args.next() {
        if a == "--quit-after" {
            quit_after = args.next().and_then(|n| n.parse().ok());
        } else {
            addr = Some(a.parse()?);
        }
    }
    let mut event_loop = EventLoop::<eframe::UserEvent>::with_user_event().build()?;
    let reactor = Reactor::new()?;
    let chat = Rc::new(RefCell::new(Chat {
        status: "connecting...".into(),
        ..Chat::default()
    }));
    let target = match addr {
        Some(a) => a,
        None => serve(&reactor)?,
    };
    let (c, r) = (chat.clone(), reactor.clone());
    reactor.connect_tcp(
        target,
        move |_: &Address| {
            LineReceiver::with_delimiter(
                ToWindow {
                    chat: c.clone(),
                    quit_after,
                    reactor: r.clone(),
                },
                b"\n",
                4096,
            )
        },
        Some(Duration::from_secs(5)),
    );
    let c = chat.clone();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("braid: lines over TCP, on winit's thread (egui)")
            .with_inner_size([520.0, 360.0]),
        ..Default::default()
    };
    let mut app = eframe::create_native(
        "braid-egui-lines",
        options,
        Box::new(move |cc| {
            c.borrow_mut().egui = Some(cc.egui_ctx.clone());
            Ok(Box::new(Window {
                chat: c,
                input: String::new(),
                want_focus: true,
            }))
        }),
        &event_loop,
    );
    let end = braid_winit::run_app(&mut event_loop, &reactor, &mut app)?;
    eprintln!("egui_lines: {end:?}");
    Ok(())
}
