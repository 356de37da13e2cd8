//! An SSH session in a GTK4 window, on the GUI thread: braid-ssh's client
//! runs inside GTK's own main loop (braid-glib); Run sends the command
//! over SSH and its output streams into the text view as it arrives,
//! stderr too, then the exit status. No thread, no channel, no tokio.
//!
//! ```text
//! cargo run -p demo-gtk --example ssh_window                 # an embedded braid SSH server on loopback
//! cargo run -p demo-gtk --example ssh_window -- --server HOST:PORT --user NAME \
//!     --key ~/.ssh/id_ed25519 --known-hosts ~/.ssh/known_hosts
//! ```
//!
//! With no `--server`, the same loop also runs a braid SSH server on
//! loopback (commands as this user) with a key made for the session, so
//! the example works on its own. `--auto-run` runs the command once the
//! window is up, prints what the view shows, and quits (the Xvfb test).
//! (Debian's VTE for GTK 4 has no Rust binding in this registry, so the
//! view is a `TextView`, not a terminal widget.)

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use braid::{CloseReason, Protocol, Reactor, Transport};
use braid_cred::Portal;
use braid_ssh::{
    AuthorizedKeysChecker, ClientKey, HostKey, ProcessAvatar, SessionChannel, SessionRequest,
    SshClient, SshClientConfig, SshServer,
};
use gtk4 as gtk;
use gtk4::glib;
use gtk4::prelude::*;

struct Opts {
    server: Option<(String, u16)>,
    user: String,
    key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    auto_run: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        server: None,
        user: std::env::var("USER").unwrap_or_else(|_| "me".into()),
        key: None,
        known_hosts: None,
        auto_run: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--server" => {
                let v = value()?;
                let (h, p) = v.rsplit_once(':').ok_or("--server needs HOST:PORT")?;
                o.server = Some((h.to_owned(), p.parse().map_err(|_| "bad port")?));
            }
            "--user" => o.user = value()?,
            "--key" => o.key = Some(value()?.into()),
            "--known-hosts" => o.known_hosts = Some(value()?.into()),
            "--auto-run" => o.auto_run = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Appends what the command writes to the view, as it comes.
struct ToView {
    view: gtk::TextView,
    on_end: Option<Box<dyn FnOnce(String)>>,
    channel: Option<SessionChannel>,
}

fn append(view: &gtk::TextView, text: &str) {
    let b = view.buffer();
    b.insert(&mut b.end_iter(), text);
}

impl Protocol for ToView {
    fn connection_made(&mut self, t: &Transport) {
        if let Some(ch) = t.layer::<SessionChannel>() {
            let view = self.view.clone();
            ch.on_stderr(move |d| append(&view, &String::from_utf8_lossy(d)));
            self.channel = Some((*ch).clone());
        }
        t.lose_write_connection();
    }
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        append(&self.view, &String::from_utf8_lossy(data));
    }
    fn read_eof(&mut self, _: &Transport) {}
    fn connection_lost(&mut self, _: &CloseReason) {
        let exit = self.channel.as_ref().and_then(|c| c.remote_exit());
        let line = format!("exit: {exit:?}");
        append(&self.view, &format!("[{line}]\n"));
        if let Some(f) = self.on_end.take() {
            f(line);
        }
    }
}

/// An SSH server on loopback in this loop, and a client set up for it.
fn embedded(reactor: &Reactor, user: &str) -> (String, u16, SshClientConfig) {
    let dir = std::env::temp_dir().join(format!("braid-ssh-window-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let host_key = HostKey::generate().expect("host key");
    let client_key = HostKey::generate().expect("client key");
    client_key.save(dir.join("id")).expect("save key");
    std::fs::write(
        dir.join("authorized_keys"),
        client_key.public_openssh() + "\n",
    )
    .unwrap();
    let portal = Portal::new(reactor, |_: &str, _: ()| (ProcessAvatar::new(), None)).checker(
        AuthorizedKeysChecker::file(dir.join("authorized_keys"), vec![user.to_owned()]),
    );
    let public = host_key.public_openssh();
    let server = SshServer::new(reactor, vec![host_key], portal);
    let l = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), server)
        .expect("listen");
    let port = l.local_addr().port();
    std::mem::forget(l);
    let config = SshClientConfig::new(user, dir.join("known_hosts"))
        .key(ClientKey::from_openssh_file(dir.join("id")).unwrap())
        .host_keys(braid_ssh::HostKeyPolicy::Exactly(public));
    println!("embedded SSH server on 127.0.0.1:{port}");
    ("127.0.0.1".into(), port, config)
}

fn main() -> glib::ExitCode {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ssh_window: {e}");
            return glib::ExitCode::FAILURE;
        }
    };
    gtk::init().expect("a display (DISPLAY or WAYLAND_DISPLAY)");
    let reactor = Reactor::new().expect("a reactor");
    let _attached = braid_glib::attach(&reactor, &glib::MainContext::default()).expect("attach");
    let (host, port, config) = match &opts.server {
        None => embedded(&reactor, &opts.user),
        Some((h, p)) => {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
            let known = opts
                .known_hosts
                .clone()
                .unwrap_or_else(|| PathBuf::from(&home).join(".ssh/known_hosts"));
            let key = opts
                .key
                .clone()
                .unwrap_or_else(|| PathBuf::from(&home).join(".ssh/id_ed25519"));
            let mut c = SshClientConfig::new(&opts.user, known);
            match ClientKey::from_openssh_file(&key) {
                Ok(k) => c = c.key(k),
                Err(e) => eprintln!("ssh_window: no key: {e}"),
            }
            (h.clone(), *p, c)
        }
    };

    let app = gtk::Application::builder()
        .application_id("org.braid.SshWindow")
        .flags(gtk::gio::ApplicationFlags::NON_UNIQUE)
        .build();
    let auto = opts.auto_run;
    let client: Rc<RefCell<Option<SshClient>>> = Rc::default();
    app.connect_activate(move |app| {
        let window = gtk::ApplicationWindow::builder()
            .application(app)
            .title(format!("braid: ssh {host}:{port}"))
            .default_width(640)
            .default_height(420)
            .build();
        let vbox = gtk::Box::new(gtk::Orientation::Vertical, 6);
        let row = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        let command = gtk::Entry::builder()
            .text("echo hello from ssh; uname -s; echo to stderr >&2")
            .hexpand(true)
            .build();
        let run = gtk::Button::with_label("Run");
        row.append(&command);
        row.append(&run);
        let view = gtk::TextView::builder()
            .editable(false)
            .monospace(true)
            .vexpand(true)
            .build();
        let status = gtk::Label::new(Some("connecting..."));
        vbox.append(&row);
        vbox.append(
            &gtk::ScrolledWindow::builder()
                .child(&view)
                .vexpand(true)
                .build(),
        );
        vbox.append(&status);
        window.set_child(Some(&vbox));
        run.set_sensitive(false);

        // Connect once; the handler returns at once, GTK keeps drawing.
        let (r, c2, st, rb, cfg, h) = (
            reactor.clone(),
            client.clone(),
            status.clone(),
            run.clone(),
            config.clone(),
            host.clone(),
        );
        let app2 = app.clone();
        drop(reactor.spawn_local(async move {
            match SshClient::connect(&r, &h, port, cfg).await {
                Ok(ssh) => {
                    st.set_text(&format!("logged in to {h}:{port}"));
                    *c2.borrow_mut() = Some(ssh);
                    rb.set_sensitive(true);
                    if auto {
                        rb.emit_clicked();
                    }
                }
                Err(e) => {
                    st.set_text(&format!("failed: {e}"));
                    println!("failed: {e}");
                    if auto {
                        app2.quit();
                    }
                }
            }
        }));

        let (client, app) = (client.clone(), app.clone());
        run.connect_clicked(move |_| {
            let Some(ssh) = client.borrow().clone() else {
                return;
            };
            let (shown, app) = (view.clone(), app.clone());
            let on_end = Box::new(move |line: String| {
                if auto {
                    let b = shown.buffer();
                    print!("{}", b.text(&b.start_iter(), &b.end_iter(), false));
                    println!("{line}");
                    app.quit();
                }
            });
            let request = SessionRequest {
                command: Some(command.text().to_string()),
                pty: None,
                ..SessionRequest::default()
            };
            let sink = ToView {
                view: view.clone(),
                on_end: Some(on_end),
                channel: None,
            };
            if let Err(e) = ssh.session(request, sink) {
                append(&view, &format!("[{e}]\n"));
            }
        });
        window.present();
    });
    app.run_with_args::<&str>(&[])
}
