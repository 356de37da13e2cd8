//! What a GUI developer copies: a GTK4 window whose network never blocks
//! it. A button fetches a URL into a label with braid's HTTP `Agent`
//! (awaited on glib's own executor, `glib::spawn_future_local`) while a
//! second button keeps counting; an entry feeds a line client over an
//! `aio` stream (its `writer()` sends from the entry's callback, a glib
//! task shows what comes back); closing the window hides it and stops the
//! reactor, and the reactor's stop quits the application. Everything runs on GTK's
//! thread, in GTK's loop.
//!
//! ```text
//! cargo run -p braid-glib --example gtk_fetch                 (serves its own slow page and line server)
//! cargo run -p braid-glib --example gtk_fetch -- --self-test  (clicks by itself and reports; the tests run this)
//! ```

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::aio::Stream;
use braid::framing::{LineContext, LineHandler, LineReceiver};
use braid::{Address, Reactor};
use braid_web::{Agent, FnResource, Reply, Request, Response, Site};
use futures_util::io::{AsyncBufReadExt, BufReader};
use futures_util::StreamExt;
use gtk4::prelude::*;

/// How long the local page takes to answer: long enough to click during.
const SLOW: Duration = Duration::from_millis(1500);

/// A page that answers slowly, and a line server that shouts back.
fn serve(reactor: &Reactor) -> std::io::Result<(SocketAddr, SocketAddr)> {
    let r = reactor.clone();
    let page = FnResource::leaf(move |_req: Request| {
        let r = r.clone();
        Reply::later(async move {
            r.sleep(SLOW).await;
            Response::text("hello from a slow server")
        })
    });
    let web = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), Site::new(page))?;
    struct Shout;
    impl LineHandler for Shout {
        fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
            ctx.send_line(&line.to_ascii_uppercase());
        }
    }
    let lines = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| {
        LineReceiver::with_delimiter(Shout, b"\n", 4096)
    })?;
    Ok((web.local_addr(), lines.local_addr()))
}

fn main() -> glib::ExitCode {
    let self_test = std::env::args().any(|a| a == "--self-test");
    let app = gtk4::Application::builder()
        .application_id("org.braid.GtkFetch")
        .build();
    let keep: Rc<RefCell<Option<braid_glib::Attached>>> = Rc::default();
    app.connect_activate(move |app| {
        let reactor = Reactor::new().expect("a reactor");
        let attached = braid_glib::attach(&reactor, &glib::MainContext::default()).expect("attach");
        let a = app.clone();
        attached.on_stop(move || a.quit());
        let (web, lines) = serve(&reactor).expect("serve");
        let agent = Agent::new(&reactor);

        let fetched = gtk4::Label::new(Some("press Fetch"));
        let fetch = gtk4::Button::with_label("Fetch");
        let counted = gtk4::Label::new(Some("0"));
        let count = gtk4::Button::with_label("Count");
        let entry = gtk4::Entry::builder()
            .placeholder_text("type a line, press Enter")
            .build();
        let heard = gtk4::Label::new(Some("(the line server's answers)"));
        let column = gtk4::Box::new(gtk4::Orientation::Vertical, 8);
        for w in [
            fetch.upcast_ref::<gtk4::Widget>(),
            fetched.upcast_ref(),
            count.upcast_ref(),
            counted.upcast_ref(),
            entry.upcast_ref(),
            heard.upcast_ref(),
        ] {
            column.append(w);
        }
        column.set_margin_top(16);
        column.set_margin_bottom(16);
        column.set_margin_start(16);
        column.set_margin_end(16);
        let window = gtk4::ApplicationWindow::builder()
            .application(app)
            .title("braid: the window stays responsive while the network works")
            .default_width(460)
            .child(&column)
            .build();
        window.present();

        // The counter: plain GTK state, to show the window keeps working.
        let clicks = Rc::new(Cell::new(0u32));
        let (c, l) = (clicks.clone(), counted.clone());
        count.connect_clicked(move |_| {
            c.set(c.get() + 1);
            l.set_text(&c.get().to_string());
        });

        // Fetch: awaited on glib's executor; the click returns at once.
        let fetching = Rc::new(Cell::new(false));
        let (f, lbl, ag, c) = (
            fetching.clone(),
            fetched.clone(),
            agent.clone(),
            clicks.clone(),
        );
        let url = format!("http://{web}/");
        fetch.connect_clicked(move |_| {
            if f.replace(true) {
                return;
            }
            lbl.set_text("fetching...");
            let (f, lbl, ag, c, url) = (f.clone(), lbl.clone(), ag.clone(), c.clone(), url.clone());
            let at_start = c.get();
            glib::spawn_future_local(async move {
                let text = match ag.get(&url).await {
                    Ok(r) => r.text(1 << 20).await.unwrap_or_else(|e| e.to_string()),
                    Err(e) => format!("failed: {e}"),
                };
                lbl.set_text(&text);
                f.set(false);
                println!("fetched: {text}");
                println!(
                    "counter advanced {} times during the fetch",
                    c.get() - at_start
                );
            });
        });

        // The line client: connect in a glib task, send from the entry's
        // callback through the stream's writer, show answers as they come.
        let r = reactor.clone();
        let (e, h) = (entry.clone(), heard.clone());
        glib::spawn_future_local(async move {
            let stream = match Stream::connect(&r, lines).await {
                Ok(s) => s,
                Err(err) => {
                    h.set_text(&format!("cannot connect: {err}"));
                    return;
                }
            };
            let send = stream.writer();
            e.connect_activate(move |e| {
                send.write(format!("{}\n", e.text()).as_bytes());
                e.set_text("");
            });
            let mut answers = BufReader::new(stream).lines();
            while let Some(Ok(line)) = answers.next().await {
                h.set_text(&line);
                println!("line client got: {line}");
            }
        });

        // Closing the window hides it and stops the reactor (what was
        // written is sent first); the reactor's stop then quits the app,
        // which takes the window down. (Letting GTK destroy the last window
        // first, with Propagation::Proceed, left GtkApplication::run
        // waiting after quit in our tests: hide, then quit.)
        let r = reactor.clone();
        window.connect_close_request(move |w| {
            w.set_visible(false);
            r.stop();
            glib::Propagation::Stop
        });
        *keep.borrow_mut() = Some(attached);

        if self_test {
            self_test_script(&window, &fetch, &count, &entry, &fetching, &heard);
        }
    });
    app.run_with_args::<&str>(&[])
}

/// Clicks as a user would (through GTK's own signals): Fetch, then Count
/// every 100 ms while the fetch is under way; then a line in the entry;
/// then closes the window. Gives up after 20 s.
fn self_test_script(
    window: &gtk4::ApplicationWindow,
    fetch: &gtk4::Button,
    count: &gtk4::Button,
    entry: &gtk4::Entry,
    fetching: &Rc<Cell<bool>>,
    heard: &gtk4::Label,
) {
    fetch.emit_clicked();
    let (count, entry, fetching, heard, window) = (
        count.clone(),
        entry.clone(),
        fetching.clone(),
        heard.clone(),
        window.clone(),
    );
    let typed = Rc::new(Cell::new(false));
    glib::timeout_add_local(Duration::from_millis(100), move || {
        if fetching.get() {
            count.emit_clicked();
            return glib::ControlFlow::Continue;
        }
        if !typed.replace(true) {
            entry.set_text("hello from the entry");
            entry.emit_activate();
            return glib::ControlFlow::Continue;
        }
        if heard.text() == "HELLO FROM THE ENTRY" {
            window.close();
            return glib::ControlFlow::Break;
        }
        glib::ControlFlow::Continue
    });
    glib::timeout_add_local_once(Duration::from_secs(20), || {
        println!("self-test timed out");
        std::process::exit(1);
    });
}
