//! A Qt Quick window that shows the lines a TCP server sends and sends
//! what is typed, with the network on Qt's GUI thread, in Qt's own loop:
//! no second thread, no channel, no polling timer.
//!
//! ```text
//! cargo run -p braid-qt --example qt_lines                   (talks to its own server)
//! cargo run -p braid-qt --example qt_lines -- 127.0.0.1:7000 (talks to another one)
//! ```
//!
//! The embedded server greets, then answers each line with `echo: LINE`.
//! Every line shown is also printed to stdout as `shown: LINE`, every line
//! sent as `sent: LINE`; `--quit-after N` stops the reactor (which quits
//! the application) once N lines have been shown. The tests use both.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::framing::{LineContext, LineHandler, LineReceiver};
use braid::{Address, Reactor, Transport};
use qmetaobject::prelude::*;
use qmetaobject::QObjectPinned;

/// What QML sees: the lines so far, and `send`.
#[derive(QObject, Default)]
struct Chat {
    base: qt_base_class!(trait QObject),
    /// Everything shown, one line per line.
    text: qt_property!(QString; NOTIFY text_changed),
    text_changed: qt_signal!(),
    /// Connection state for the status line.
    status: qt_property!(QString; NOTIFY status_changed),
    status_changed: qt_signal!(),
    send: qt_method!(
        fn send(&mut self, line: QString) {
            let line = line.to_string();
            match &self.transport {
                Some(t) if !line.is_empty() => {
                    t.write(format!("{line}\n").as_bytes());
                    println!("sent: {line}");
                }
                _ => {}
            }
        }
    ),
    transport: Option<Transport>,
    shown: Vec<String>,
}

impl Chat {
    fn show(&mut self, line: &str) {
        self.shown.push(line.to_owned());
        self.text = self.shown.join("\n").into();
        self.text_changed();
        println!("shown: {line}");
    }

    fn set_status(&mut self, s: &str) {
        self.status = s.into();
        self.status_changed();
    }
}

/// The protocol: each line into the window.
struct ToWindow {
    chat: QObjectPinned<'static, Chat>,
    count: Rc<Cell<u32>>,
    quit_after: Option<u32>,
    reactor: Reactor,
}

impl LineHandler for ToWindow {
    fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
        let mut chat = self.chat.borrow_mut();
        chat.transport = Some(ctx.transport().clone());
        chat.set_status("connected");
    }

    fn line_received(&mut self, _: &mut LineContext<'_>, line: &[u8]) {
        self.chat.borrow_mut().show(&String::from_utf8_lossy(line));
        self.count.set(self.count.get() + 1);
        if self.quit_after == Some(self.count.get()) {
            self.reactor.stop();
        }
    }

    fn connection_lost(&mut self, reason: &braid::CloseReason) {
        let mut chat = self.chat.borrow_mut();
        chat.transport = None;
        chat.set_status(&format!("disconnected: {reason}"));
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

const QML: &str = r#"
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts

ApplicationWindow {
    visible: true
    width: 520; height: 360
    title: "braid: lines over TCP, on Qt's thread"
    ColumnLayout {
        anchors.fill: parent
        anchors.margins: 12
        Label { text: chat.status; color: "gray" }
        ScrollView {
            Layout.fillWidth: true; Layout.fillHeight: true
            TextArea { objectName: "lines"; readOnly: true; text: chat.text; wrapMode: TextEdit.Wrap }
        }
        TextField {
            id: input
            objectName: "input"
            Layout.fillWidth: true
            focus: true
            placeholderText: "type a line, Enter sends it"
            onAccepted: { chat.send(text); text = "" }
        }
    }
}
"#;

fn main() {
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
    // The engine makes the QApplication; attach once it exists.
    let mut engine = QmlEngine::new();
    // The window's object lives as long as the application: leaked, so
    // protocol callbacks can hold it.
    let chat: &'static QObjectBox<Chat> = Box::leak(Box::new(QObjectBox::new(Chat::default())));
    chat.pinned().borrow_mut().set_status("connecting...");
    engine.set_object_property("chat".into(), chat.pinned());

    let reactor = Reactor::new().expect("a reactor");
    let attached = braid_qt::attach(&reactor).expect("attach to Qt's loop");
    attached.quit_on_stop();
    let target = addr.unwrap_or_else(|| serve(&reactor).expect("serve"));
    let count = Rc::new(Cell::new(0));
    let r = reactor.clone();
    let pinned = chat.pinned();
    reactor.connect_tcp(
        target,
        move |_: &Address| {
            LineReceiver::with_delimiter(
                ToWindow {
                    chat: pinned,
                    count: count.clone(),
                    quit_after,
                    reactor: r.clone(),
                },
                b"\n",
                4096,
            )
        },
        Some(Duration::from_secs(5)),
    );
    engine.load_data(QML.into());
    engine.exec();
    attached.resume_panic();
}
