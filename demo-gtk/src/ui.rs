//! The GTK4 window: a connect form, then tabs of chat (server, channels,
//! private conversations) with a topic line, a member list, and an entry.
//! [`GtkView`] is the session's [`View`]; [`App`] wires the widgets, the
//! session and the embedded server together. All of it on GTK's thread,
//! and so is the network: the reactor is a source in GTK's main context.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use braid::Reactor;
use braid_irc::irc_lower;
use gtk4 as gtk;
use gtk4::prelude::*;
use gtk4::{gio, glib, pango};

use crate::embedded::{self, Embedded};
use crate::history::ChatLog;
use crate::model::{BufferKind, Line, LineKind, Status, View, SERVER_BUFFER};
use crate::session::{Session, SessionConfig};

const CSS: &str = "
.status { font-size: smaller; }
.status-connected { color: #2e7d32; }
.status-connecting, .status-reconnecting { color: #b26a00; }
.status-failed { color: #c62828; }
.topic { padding: 4px 10px; font-style: italic; }
.members-title { padding: 4px 8px; font-weight: bold; }
.form-error { color: #c62828; }
textview.chat { font-family: monospace; }
";

/// Lines a buffer keeps; older ones are dropped (the history database
/// keeps them).
const MAX_LINES: i32 = 5_000;

/// Nick colours (readable on light and dark themes).
const NICK_COLOURS: [&str; 8] = [
    "#1565c0", "#2e7d32", "#ad1457", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037", "#c62828",
];

fn nick_colour_tag(nick: &str) -> String {
    let h = irc_lower(nick)
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    format!("nick-{}", h as usize % NICK_COLOURS.len())
}

fn tag_table() -> gtk::TextTagTable {
    let table = gtk::TextTagTable::new();
    let add = |t: gtk::TextTag| {
        table.add(&t);
    };
    add(gtk::TextTag::builder()
        .name("time")
        .foreground("#8a8a8a")
        .build());
    add(gtk::TextTag::builder()
        .name("info")
        .foreground("#7a7a7a")
        .style(pango::Style::Italic)
        .build());
    add(gtk::TextTag::builder()
        .name("error")
        .foreground("#c62828")
        .weight(700)
        .build());
    add(gtk::TextTag::builder()
        .name("notice")
        .foreground("#795548")
        .build());
    add(gtk::TextTag::builder()
        .name("action")
        .style(pango::Style::Italic)
        .build());
    add(gtk::TextTag::builder()
        .name("history")
        .foreground("#9e9e9e")
        .build());
    for (i, c) in NICK_COLOURS.iter().enumerate() {
        add(gtk::TextTag::builder()
            .name(format!("nick-{i}"))
            .foreground(*c)
            .weight(700)
            .build());
    }
    table
}

fn time_text(at_ms: i64, with_date: bool) -> String {
    glib::DateTime::from_unix_local(at_ms.div_euclid(1000))
        .and_then(|t| t.format(if with_date { "%b %d %H:%M" } else { "%H:%M" }))
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "--:--".into())
}

/// Inserts one line (with its trailing newline) at `iter`.
fn insert_line(tb: &gtk::TextBuffer, iter: &mut gtk::TextIter, line: &Line, history: bool) {
    let extra: &[&str] = if history { &["history"] } else { &[] };
    let with = |base: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let put = |iter: &mut gtk::TextIter, text: &str, tags: Vec<String>| {
        let names: Vec<&str> = tags.iter().map(String::as_str).collect();
        tb.insert_with_tags_by_name(iter, text, &names);
    };
    put(
        iter,
        &format!("{} ", time_text(line.at_ms, history)),
        with(&["time"]),
    );
    let nick_tag = nick_colour_tag(&line.nick);
    match line.kind {
        LineKind::Message => {
            put(iter, &format!("<{}> ", line.nick), with(&[&nick_tag]));
            put(iter, &line.text, with(&[]));
        }
        LineKind::Action => {
            put(iter, "* ", with(&["action"]));
            put(iter, &line.nick, with(&[&nick_tag, "action"]));
            put(iter, &format!(" {}", line.text), with(&["action"]));
        }
        LineKind::Notice => {
            let who = if line.nick.is_empty() {
                String::new()
            } else {
                format!("-{}- ", line.nick)
            };
            put(iter, &format!("{who}{}", line.text), with(&["notice"]));
        }
        LineKind::Info => put(iter, &format!("— {}", line.text), with(&["info"])),
        LineKind::Error => put(iter, &format!("! {}", line.text), with(&["error"])),
    }
    put(iter, "\n", Vec::new());
}

struct Buf {
    key: String,
    name: String,
    kind: BufferKind,
    page: gtk::Box,
    scroll: gtk::ScrolledWindow,
    text: gtk::TextBuffer,
    view: gtk::TextView,
    topic: gtk::Label,
    members: Option<(gtk::ListBox, gtk::Label)>,
    tab: gtk::Label,
    unread: Cell<u32>,
}

type StatusHook = Box<dyn Fn(&Status)>;

/// The chat tabs and the status line: the session's [`View`] in GTK.
pub struct GtkView {
    notebook: gtk::Notebook,
    status: gtk::Label,
    nick: gtk::Label,
    tags: gtk::TextTagTable,
    buffers: RefCell<Vec<Rc<Buf>>>,
    server_label: RefCell<String>,
    echo: bool,
    on_status: RefCell<Option<StatusHook>>,
}

impl GtkView {
    fn new(echo: bool) -> Rc<GtkView> {
        let notebook = gtk::Notebook::builder()
            .scrollable(true)
            .vexpand(true)
            .hexpand(true)
            .build();
        let status = gtk::Label::builder()
            .label("not connected")
            .css_classes(["status"])
            .ellipsize(pango::EllipsizeMode::End)
            .build();
        let nick = gtk::Label::new(None);
        let view = Rc::new(GtkView {
            notebook,
            status,
            nick,
            tags: tag_table(),
            buffers: RefCell::new(Vec::new()),
            server_label: RefCell::new("server".into()),
            echo,
            on_status: RefCell::new(None),
        });
        let weak = Rc::downgrade(&view);
        view.notebook.connect_switch_page(move |_, page, _| {
            if let Some(v) = weak.upgrade() {
                if let Some(b) = v.by_page(page) {
                    b.unread.set(0);
                    v.update_tab(&b);
                }
            }
        });
        view
    }

    fn echo(&self, what: &str, buffer: &str, text: &str) {
        if self.echo {
            println!("{what}\t{buffer}\t{text}");
        }
    }

    fn find(&self, name: &str) -> Option<Rc<Buf>> {
        let key = irc_lower(name);
        self.buffers.borrow().iter().find(|b| b.key == key).cloned()
    }

    fn by_page(&self, page: &gtk::Widget) -> Option<Rc<Buf>> {
        self.buffers
            .borrow()
            .iter()
            .find(|b| b.page.upcast_ref::<gtk::Widget>() == page)
            .cloned()
    }

    /// The buffer whose tab is in front ([`SERVER_BUFFER`] when none).
    pub fn current_buffer(&self) -> String {
        self.notebook
            .current_page()
            .and_then(|n| self.notebook.nth_page(Some(n)))
            .and_then(|w| self.by_page(&w))
            .map(|b| b.name.clone())
            .unwrap_or_else(|| SERVER_BUFFER.to_owned())
    }

    /// Removes every tab (before a new session).
    pub fn clear(&self) {
        for b in self.buffers.borrow_mut().drain(..) {
            if let Some(n) = self.notebook.page_num(&b.page) {
                self.notebook.remove_page(Some(n));
            }
        }
    }

    fn update_tab(&self, b: &Buf) {
        let name = if b.kind == BufferKind::Server {
            self.server_label.borrow().clone()
        } else {
            b.name.clone()
        };
        match b.unread.get() {
            0 => b.tab.set_text(&name),
            n => b
                .tab
                .set_markup(&format!("<b>{} ({n})</b>", glib::markup_escape_text(&name))),
        }
    }

    fn is_front(&self, b: &Buf) -> bool {
        self.notebook.current_page() == self.notebook.page_num(&b.page)
    }

    fn at_bottom(b: &Buf) -> bool {
        let adj = b.scroll.vadjustment();
        adj.value() + adj.page_size() >= adj.upper() - 40.0
    }

    fn scroll_to_end(b: &Buf) {
        let mark = b
            .text
            .mark("end")
            .unwrap_or_else(|| b.text.create_mark(Some("end"), &b.text.end_iter(), false));
        b.text.move_mark(&mark, &b.text.end_iter());
        b.view.scroll_to_mark(&mark, 0.0, true, 0.0, 1.0);
    }
}

impl View for GtkView {
    fn set_status(&self, status: &Status) {
        self.status.set_text(&status.to_string());
        for w in [
            "idle",
            "connecting",
            "connected",
            "reconnecting",
            "failed",
            "disconnected",
        ] {
            self.status.remove_css_class(&format!("status-{w}"));
        }
        self.status
            .add_css_class(&format!("status-{}", status.word()));
        self.echo("status", status.word(), &status.to_string());
        if let Some(f) = &*self.on_status.borrow() {
            f(status);
        }
    }

    fn set_nick(&self, nick: &str) {
        self.nick.set_text(nick);
        self.echo("nick", "", nick);
    }

    fn open_buffer(&self, name: &str, kind: BufferKind, focus: bool) {
        if let Some(b) = self.find(name) {
            if focus {
                if let Some(n) = self.notebook.page_num(&b.page) {
                    self.notebook.set_current_page(Some(n));
                }
            }
            return;
        }
        let text = gtk::TextBuffer::new(Some(&self.tags));
        let view = gtk::TextView::builder()
            .buffer(&text)
            .editable(false)
            .cursor_visible(false)
            .wrap_mode(gtk::WrapMode::WordChar)
            .left_margin(8)
            .right_margin(8)
            .top_margin(4)
            .bottom_margin(4)
            .css_classes(["chat"])
            .build();
        let scroll = gtk::ScrolledWindow::builder()
            .child(&view)
            .vexpand(true)
            .hexpand(true)
            .build();
        let topic = gtk::Label::builder()
            .xalign(0.0)
            .ellipsize(pango::EllipsizeMode::End)
            .selectable(true)
            .css_classes(["topic"])
            .visible(kind == BufferKind::Channel)
            .build();
        let page = gtk::Box::new(gtk::Orientation::Vertical, 0);
        page.append(&topic);
        let members = if kind == BufferKind::Channel {
            let list = gtk::ListBox::builder()
                .selection_mode(gtk::SelectionMode::None)
                .build();
            let title = gtk::Label::builder()
                .label("members")
                .xalign(0.0)
                .css_classes(["members-title"])
                .build();
            let side = gtk::Box::new(gtk::Orientation::Vertical, 0);
            side.append(&title);
            side.append(
                &gtk::ScrolledWindow::builder()
                    .child(&list)
                    .vexpand(true)
                    .width_request(150)
                    .hscrollbar_policy(gtk::PolicyType::Never)
                    .build(),
            );
            let paned = gtk::Paned::builder()
                .orientation(gtk::Orientation::Horizontal)
                .start_child(&scroll)
                .end_child(&side)
                .resize_end_child(false)
                .shrink_end_child(false)
                .vexpand(true)
                .build();
            page.append(&paned);
            Some((list, title))
        } else {
            page.append(&scroll);
            None
        };
        let tab = gtk::Label::new(Some(name));
        let b = Rc::new(Buf {
            key: irc_lower(name),
            name: name.to_owned(),
            kind,
            page,
            scroll,
            text,
            view,
            topic,
            members,
            tab,
            unread: Cell::new(0),
        });
        self.update_tab(&b);
        let n = self.notebook.append_page(&b.page, Some(&b.tab));
        self.buffers.borrow_mut().push(b);
        if focus {
            self.notebook.set_current_page(Some(n));
        }
        self.echo("open", name, "");
    }

    fn close_buffer(&self, name: &str) {
        let key = irc_lower(name);
        let gone = {
            let mut bufs = self.buffers.borrow_mut();
            let i = bufs.iter().position(|b| b.key == key);
            i.map(|i| bufs.remove(i))
        };
        if let Some(b) = gone {
            if let Some(n) = self.notebook.page_num(&b.page) {
                self.notebook.remove_page(Some(n));
            }
            self.echo("close", name, "");
        }
    }

    fn has_buffer(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    fn append(&self, buffer: &str, line: &Line) {
        let Some(b) = self.find(buffer) else {
            tracing::debug!(buffer, "a line for a closed buffer");
            return;
        };
        let follow = Self::at_bottom(&b);
        let mut end = b.text.end_iter();
        insert_line(&b.text, &mut end, line, false);
        // A long session keeps the newest lines only.
        let excess = b.text.line_count() - MAX_LINES;
        if excess > 0 {
            let (mut from, mut to) = (
                b.text.start_iter(),
                b.text.iter_at_line(excess).unwrap_or(b.text.start_iter()),
            );
            b.text.delete(&mut from, &mut to);
        }
        let mut last = b.text.end_iter();
        last.backward_line();
        let start = last.offset();
        if follow {
            Self::scroll_to_end(&b);
        }
        if !self.is_front(&b) && matches!(line.kind, LineKind::Message | LineKind::Action) {
            b.unread.set(b.unread.get() + 1);
            self.update_tab(&b);
        }
        if self.echo {
            // Read back what the window holds, not what we meant to put.
            let shown = b
                .text
                .text(&b.text.iter_at_offset(start), &b.text.end_iter(), false);
            self.echo("shown", &b.name, shown.trim_end());
        }
    }

    fn show_history(&self, buffer: &str, lines: &[Line]) {
        let Some(b) = self.find(buffer) else { return };
        let mut at = b.text.start_iter();
        for l in lines {
            insert_line(&b.text, &mut at, l, true);
        }
        b.text.insert_with_tags_by_name(
            &mut at,
            &format!("— {} earlier lines from the history above —\n", lines.len()),
            &["info"],
        );
        Self::scroll_to_end(&b);
        if self.echo {
            let shown = b.text.text(&b.text.start_iter(), &at, false);
            for l in shown.lines() {
                self.echo("history", &b.name, l);
            }
        }
    }

    fn set_topic(&self, buffer: &str, topic: Option<&str>) {
        if let Some(b) = self.find(buffer) {
            b.topic.set_text(topic.unwrap_or("(no topic)"));
            self.echo("topic", &b.name, &b.topic.text());
        }
    }

    fn set_members(&self, buffer: &str, members: &[String]) {
        let Some(b) = self.find(buffer) else { return };
        let Some((list, title)) = &b.members else {
            return;
        };
        while let Some(child) = list.first_child() {
            list.remove(&child);
        }
        for m in members {
            list.append(
                &gtk::Label::builder()
                    .label(m.as_str())
                    .xalign(0.0)
                    .margin_start(8)
                    .margin_end(8)
                    .build(),
            );
        }
        title.set_text(&format!("{} members", members.len()));
        self.echo("members", &b.name, &members.join(","));
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// A server to join; `None` runs the embedded server and joins it.
    pub server: Option<(String, u16)>,
    /// The nick.
    pub nick: String,
    /// The channel to join.
    pub channel: String,
    /// A server password.
    pub password: Option<String>,
    /// Connect over TLS (IRC over TLS, usually port 6697), checking the
    /// certificate against the platform's roots.
    pub tls: bool,
    /// The history database (default: [`crate::history::default_path`]).
    pub history: PathBuf,
    /// Where the embedded server listens.
    pub listen: SocketAddr,
    /// Connect at once, without waiting on the connect form (always so
    /// for the embedded server).
    pub connect: bool,
    /// Print what the window shows on stdout (for the end-to-end test).
    pub echo: bool,
}

struct Form {
    server: gtk::Entry,
    port: gtk::Entry,
    nick: gtk::Entry,
    channel: gtk::Entry,
    note: gtk::Label,
    error: gtk::Label,
    button: gtk::Button,
}

/// The application: window, view, session, embedded server.
pub struct App {
    reactor: Reactor,
    opts: Options,
    window: gtk::ApplicationWindow,
    stack: gtk::Stack,
    entry: gtk::Entry,
    action: gtk::Button,
    form: Form,
    view: Rc<GtkView>,
    log: Rc<ChatLog>,
    session: RefCell<Option<Session>>,
    embedded: RefCell<Option<Embedded>>,
}

fn labelled(grid: &gtk::Grid, row: i32, label: &str, w: &impl IsA<gtk::Widget>) {
    grid.attach(
        &gtk::Label::builder().label(label).xalign(1.0).build(),
        0,
        row,
        1,
        1,
    );
    grid.attach(w, 1, row, 1, 1);
}

impl App {
    /// Builds the window for `app`, with the network on `reactor` (which
    /// must already be attached to GTK's main context).
    pub fn build(app: &gtk::Application, reactor: &Reactor, opts: Options) -> Rc<App> {
        if let Some(display) = gtk::gdk::Display::default() {
            let css = gtk::CssProvider::new();
            css.load_from_data(CSS);
            gtk::style_context_add_provider_for_display(
                &display,
                &css,
                gtk::STYLE_PROVIDER_PRIORITY_APPLICATION,
            );
        }
        let view = GtkView::new(opts.echo);

        // The connect form.
        let (host, port) = opts.server.clone().unwrap_or_else(|| (String::new(), 6667));
        let entry = |text: &str, placeholder: &str| {
            gtk::Entry::builder()
                .text(text)
                .placeholder_text(placeholder)
                .activates_default(true)
                .width_chars(28)
                .build()
        };
        let form = Form {
            server: entry(&host, "empty: serve a chat from this window"),
            port: entry(&port.to_string(), "6667"),
            nick: entry(&opts.nick, "your nick"),
            channel: entry(&opts.channel, "#braid"),
            note: gtk::Label::builder()
                .wrap(true)
                .xalign(0.0)
                .max_width_chars(50)
                .build(),
            error: gtk::Label::builder()
                .wrap(true)
                .xalign(0.0)
                .css_classes(["form-error"])
                .build(),
            button: gtk::Button::builder()
                .label("Connect")
                .css_classes(["suggested-action"])
                .build(),
        };
        let grid = gtk::Grid::builder()
            .row_spacing(10)
            .column_spacing(12)
            .halign(gtk::Align::Center)
            .valign(gtk::Align::Center)
            .build();
        let title = gtk::Label::builder()
            .label("<big><b>braid chat</b></big>\nIRC with the network on GTK's main thread")
            .use_markup(true)
            .justify(gtk::Justification::Center)
            .margin_bottom(12)
            .build();
        grid.attach(&title, 0, 0, 2, 1);
        labelled(&grid, 1, "Server", &form.server);
        labelled(&grid, 2, "Port", &form.port);
        labelled(&grid, 3, "Nick", &form.nick);
        labelled(&grid, 4, "Channel", &form.channel);
        grid.attach(&form.button, 1, 5, 1, 1);
        grid.attach(&form.error, 0, 6, 2, 1);
        grid.attach(&form.note, 0, 7, 2, 1);

        // The chat page.
        let chat_entry = gtk::Entry::builder()
            .placeholder_text("Type a message; /help lists commands")
            .hexpand(true)
            .margin_start(6)
            .margin_end(6)
            .margin_top(6)
            .margin_bottom(6)
            .build();
        let chat = gtk::Box::new(gtk::Orientation::Vertical, 0);
        chat.append(&view.notebook);
        chat.append(&chat_entry);

        let stack = gtk::Stack::new();
        stack.add_named(&grid, Some("connect"));
        stack.add_named(&chat, Some("chat"));

        // The header: title, status, nick, and one action button.
        let action = gtk::Button::with_label("Disconnect");
        action.set_visible(false);
        let heading = gtk::Box::new(gtk::Orientation::Vertical, 0);
        heading.append(
            &gtk::Label::builder()
                .label("braid chat")
                .css_classes(["title"])
                .build(),
        );
        heading.append(&view.status);
        let header = gtk::HeaderBar::new();
        header.set_title_widget(Some(&heading));
        header.pack_end(&action);
        header.pack_start(&view.nick);

        let window = gtk::ApplicationWindow::builder()
            .application(app)
            .title("braid chat")
            .default_width(900)
            .default_height(600)
            .child(&stack)
            .build();
        window.set_titlebar(Some(&header));
        window.set_default_widget(Some(&form.button));

        let log = Rc::new(ChatLog::new(reactor, &opts.history));
        let me = Rc::new(App {
            reactor: reactor.clone(),
            opts,
            window,
            stack,
            entry: chat_entry,
            action,
            form,
            view,
            log,
            session: RefCell::new(None),
            embedded: RefCell::new(None),
        });
        me.wire();
        me
    }

    fn wire(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        self.form.button.connect_clicked(move |_| {
            if let Some(app) = weak.upgrade() {
                app.connect_from_form();
            }
        });
        let weak = Rc::downgrade(self);
        self.entry.connect_activate(move |e| {
            let Some(app) = weak.upgrade() else { return };
            let text = e.text().to_string();
            e.set_text("");
            let buffer = app.view.current_buffer();
            let session = app.session.borrow().clone();
            match session {
                Some(s) => s.input(&buffer, &text),
                None => app
                    .view
                    .append(&buffer, &Line::now(LineKind::Error, "", "not connected")),
            }
        });
        let weak = Rc::downgrade(self);
        self.action.connect_clicked(move |_| {
            let Some(app) = weak.upgrade() else { return };
            let session = app.session.borrow().clone();
            match session {
                Some(s) if s.status().is_active() => s.disconnect("disconnected by you"),
                _ => app.show_form(),
            }
        });
        let weak = Rc::downgrade(self);
        *self.view.on_status.borrow_mut() = Some(Box::new(move |status| {
            if let Some(app) = weak.upgrade() {
                app.action.set_visible(true);
                app.action.set_label(if status.is_active() {
                    "Disconnect"
                } else {
                    "Connect…"
                });
            }
        }));
        // Closing the window quits IRC politely and stops the reactor,
        // which quits the app (braid_glib's on_stop).
        let weak = Rc::downgrade(self);
        self.window.connect_close_request(move |_| {
            if let Some(app) = weak.upgrade() {
                if let Some(s) = app.session.borrow().clone() {
                    s.disconnect("window closed");
                }
                app.reactor.stop();
            }
            glib::Propagation::Proceed
        });
    }

    /// Shows the window and, for the embedded server or `--connect`,
    /// connects at once.
    pub fn start(self: &Rc<Self>) {
        self.window.present();
        if self.opts.server.is_none() {
            match self.ensure_embedded() {
                Ok(addr) => {
                    self.form.note.set_text(&format!(
                        "braid's IRC server runs inside this window on {addr}. \
                         Others join with: cargo run -p demo-gtk -- {addr}"
                    ));
                    self.connect_from_form();
                }
                Err(e) => {
                    self.form
                        .error
                        .set_text(&format!("cannot start the embedded server: {e}"));
                    self.show_form();
                }
            }
        } else if self.opts.connect {
            self.connect_from_form();
        } else {
            self.show_form();
        }
        if self.opts.echo {
            println!("window\tshown\t");
        }
    }

    fn show_form(&self) {
        self.stack.set_visible_child_name("connect");
        self.window.set_default_widget(Some(&self.form.button));
        self.form.button.grab_focus();
    }

    fn ensure_embedded(&self) -> std::io::Result<SocketAddr> {
        if let Some(e) = &*self.embedded.borrow() {
            return Ok(e.addr());
        }
        let e = embedded::start(&self.reactor, self.opts.listen, &self.opts.channel)?;
        let addr = e.addr();
        tracing::info!(%addr, "embedded IRC server listening");
        println!("braid demo-gtk: serving IRC on {addr} (others join with: cargo run -p demo-gtk -- {addr})");
        *self.embedded.borrow_mut() = Some(e);
        Ok(addr)
    }

    fn connect_from_form(self: &Rc<Self>) {
        self.form.error.set_text("");
        let host = self.form.server.text().trim().to_owned();
        let nick = self.form.nick.text().trim().to_owned();
        let mut channel = self.form.channel.text().trim().to_owned();
        if !channel.is_empty() && !channel.starts_with(['#', '&']) {
            channel.insert(0, '#');
        }
        let port: Option<u16> = self.form.port.text().trim().parse().ok();
        let problem = if !braid_irc::is_valid_nick(&nick) {
            Some(format!("\"{nick}\" is not a valid nick: a letter first, then letters, digits or []\\`_^{{|}}-"))
        } else if !channel.is_empty() && !braid_irc::is_valid_channel(&channel) {
            Some(format!("\"{channel}\" is not a valid channel name"))
        } else if !host.is_empty() && port.is_none_or(|p| p == 0) {
            Some("the port must be a number from 1 to 65535".into())
        } else {
            None
        };
        if let Some(p) = problem {
            self.form.error.set_text(&p);
            self.show_form();
            return;
        }
        let mut config = if host.is_empty() {
            let addr = match self.ensure_embedded() {
                Ok(a) => a,
                Err(e) => {
                    self.form
                        .error
                        .set_text(&format!("cannot start the embedded server: {e}"));
                    return;
                }
            };
            let ip = if addr.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                addr.ip().to_string()
            };
            let mut c = SessionConfig::new(&ip, addr.port(), &nick, &channel);
            c.network = "embedded".into();
            c
        } else {
            SessionConfig::new(&host, port.unwrap_or(6667), &nick, &channel)
        };
        config.password = self.opts.password.clone();
        if self.opts.tls && !host.is_empty() {
            config.tls = Some(braid_tls::ClientConfig::new());
        }
        if let Some(old) = self.session.borrow_mut().take() {
            old.disconnect("reconnecting elsewhere");
        }
        self.view.clear();
        *self.view.server_label.borrow_mut() = if host.is_empty() {
            "embedded server".into()
        } else {
            host.clone()
        };
        let session = Session::new(
            &self.reactor,
            config,
            self.view.clone(),
            Some(self.log.clone()),
        );
        *self.session.borrow_mut() = Some(session.clone());
        self.stack.set_visible_child_name("chat");
        self.window.set_default_widget(None::<&gtk::Widget>);
        session.connect();
        if let Some(e) = &*self.embedded.borrow() {
            if host.is_empty() {
                let addr = e.addr();
                self.view.append(
                    SERVER_BUFFER,
                    &Line::now(
                        LineKind::Info,
                        "",
                        &format!("this window serves IRC on {addr}; others join with: cargo run -p demo-gtk -- {addr}"),
                    ),
                );
            }
        }
        self.entry.grab_focus();
    }

    /// The session, once connecting.
    pub fn session(&self) -> Option<Session> {
        self.session.borrow().clone()
    }
}

/// Registers `app.quit` with Ctrl+Q.
pub fn add_quit_action(app: &gtk::Application, window_app: &Rc<App>) {
    let quit = gio::SimpleAction::new("quit", None);
    let weak = Rc::downgrade(window_app);
    quit.connect_activate(move |_, _| {
        if let Some(a) = weak.upgrade() {
            a.window.close();
        }
    });
    app.add_action(&quit);
    app.set_accels_for_action("app.quit", &["<Control>q"]);
}
