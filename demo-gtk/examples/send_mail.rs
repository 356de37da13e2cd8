//! Sending mail from a GTK4 window with braid-mail's client, on the GUI
//! thread: the reactor runs inside GTK's own main loop (braid-glib), the
//! Send button spawns `client::send` as a task, and the window keeps
//! drawing while the SMTP conversation goes on. No thread, no channel.
//!
//! ```text
//! cargo run -p demo-gtk --example send_mail                      # an embedded server, into a temp Maildir
//! cargo run -p demo-gtk --example send_mail -- --server HOST:PORT [--tls]
//! ```
//!
//! With no `--server`, the same GTK loop also runs a braid-mail server on
//! loopback (delivering into a Maildir under the temp directory), so the
//! example works on its own. `--auto-send` presses Send once the window is
//! up and quits when the reply is in (what the test under Xvfb does).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::Reactor;
use braid_mail::client::{self, ClientConfig, TlsPolicy};
use braid_mail::server::{Server, SessionConfig};
use braid_mail::Maildir;
use gtk4 as gtk;
use gtk4::glib;
use gtk4::prelude::*;

struct Opts {
    server: Option<(String, u16)>,
    tls: bool,
    auto_send: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        server: None,
        tls: false,
        auto_send: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--server" => {
                let v = args.next().ok_or("--server needs HOST:PORT")?;
                let (h, p) = v.rsplit_once(':').ok_or("--server needs HOST:PORT")?;
                o.server = Some((h.to_owned(), p.parse().map_err(|_| "bad port")?));
            }
            "--tls" => o.tls = true,
            "--auto-send" => o.auto_send = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn main() -> glib::ExitCode {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("send_mail: {e}");
            return glib::ExitCode::FAILURE;
        }
    };
    gtk::init().expect("a display (DISPLAY or WAYLAND_DISPLAY)");
    let reactor = Reactor::new().expect("a reactor");
    let _attached = braid_glib::attach(&reactor, &glib::MainContext::default()).expect("attach");

    // No server given: run one in this same loop.
    let (host, port, _listener) = match opts.server.clone() {
        Some((h, p)) => (h, p, None),
        None => {
            let root = std::env::temp_dir().join(format!("braid-send-mail-{}", std::process::id()));
            let maildir = Maildir::new(&reactor, &root, ["localhost"]).users(["me"]);
            let server = Rc::new(Server::new(&reactor, SessionConfig::default(), maildir));
            let l = reactor
                .listen_tcp("127.0.0.1:0".parse().unwrap(), server.factory())
                .expect("listen");
            let addr = l.local_addr();
            println!(
                "embedded server on {addr}, delivering into {}",
                root.join("me").display()
            );
            (addr.ip().to_string(), addr.port(), Some(l))
        }
    };

    let app = gtk::Application::builder()
        .application_id("org.braid.SendMail")
        .flags(gtk::gio::ApplicationFlags::NON_UNIQUE)
        .build();
    let auto = opts.auto_send;
    let tls = opts.tls;
    app.connect_activate(move |app| {
        let window = gtk::ApplicationWindow::builder()
            .application(app)
            .title("braid: send mail")
            .default_width(480)
            .default_height(360)
            .build();
        let grid = gtk::Grid::builder()
            .row_spacing(6)
            .column_spacing(6)
            .margin_top(12)
            .margin_bottom(12)
            .margin_start(12)
            .margin_end(12)
            .build();
        let from = gtk::Entry::builder()
            .text("me@localhost")
            .hexpand(true)
            .build();
        let to = gtk::Entry::builder().text("me@localhost").build();
        let subject = gtk::Entry::builder()
            .text("Hello from a GTK window")
            .build();
        let body = gtk::TextView::builder().vexpand(true).build();
        body.buffer()
            .set_text("Sent by braid-mail, on GTK's own thread.\n");
        let send = gtk::Button::with_label("Send");
        let status = gtk::Label::new(Some(&format!("server {host}:{port}")));
        for (i, (label, w)) in [
            ("From", from.upcast_ref::<gtk::Widget>()),
            ("To", to.upcast_ref()),
            ("Subject", subject.upcast_ref()),
        ]
        .into_iter()
        .enumerate()
        {
            grid.attach(&gtk::Label::new(Some(label)), 0, i as i32, 1, 1);
            grid.attach(w, 1, i as i32, 1, 1);
        }
        grid.attach(&body, 0, 3, 2, 1);
        grid.attach(&send, 1, 4, 1, 1);
        grid.attach(&status, 0, 5, 2, 1);
        window.set_child(Some(&grid));

        // A heartbeat: the longest gap between its ticks shows whether the
        // window kept running while mail was sent.
        let last = Rc::new(Cell::new(Instant::now()));
        let worst = Rc::new(Cell::new(Duration::ZERO));
        let (l, w) = (last.clone(), worst.clone());
        glib::timeout_add_local(Duration::from_millis(10), move || {
            let now = Instant::now();
            w.set(w.get().max(now - l.get()));
            l.set(now);
            glib::ControlFlow::Continue
        });

        let r = reactor.clone();
        let (host, app) = (host.clone(), app.clone());
        send.connect_clicked(move |button| {
            button.set_sensitive(false);
            status.set_text("sending...");
            let b = body.buffer();
            let text = b.text(&b.start_iter(), &b.end_iter(), false).to_string();
            let message = format!(
                "From: {}\r\nTo: {}\r\nSubject: {}\r\n\r\n{}",
                from.text(),
                to.text(),
                subject.text(),
                text
            );
            let (sender, rcpt) = (from.text().to_string(), vec![to.text().to_string()]);
            let config = ClientConfig {
                tls: if tls {
                    TlsPolicy::Required
                } else {
                    TlsPolicy::Opportunistic
                },
                ..ClientConfig::default()
            };
            let (r2, host, status, button, app, worst) = (
                r.clone(),
                host.clone(),
                status.clone(),
                button.clone(),
                app.clone(),
                worst.clone(),
            );
            worst.set(Duration::ZERO);
            // The whole SMTP conversation is a task on the reactor, which
            // GTK's loop drives: this handler returns at once.
            drop(r.spawn_local(async move {
                let result = client::send(
                    &r2,
                    &host,
                    port,
                    &config,
                    &sender,
                    &rcpt,
                    message.as_bytes(),
                )
                .await;
                let line = match &result {
                    Ok(sent) => format!("sent: {}", sent.reply),
                    Err(e) => format!("failed: {e}"),
                };
                status.set_text(&line);
                button.set_sensitive(true);
                println!("{line}");
                println!(
                    "longest pause of the window's 10 ms heartbeat while sending: {} ms",
                    worst.get().as_millis()
                );
                if auto {
                    app.quit();
                }
            }));
        });
        window.present();
        if auto {
            let s = send.clone();
            glib::timeout_add_local_once(Duration::from_millis(300), move || s.emit_clicked());
        }
    });
    app.run_with_args::<&str>(&[])
}
