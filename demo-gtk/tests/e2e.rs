//! The demo end to end, in a real GTK4 window under X (Xvfb in CI): a
//! scripted IRC server on loopback, keystrokes typed with xdotool, the
//! window's contents read back (the demo's `--echo` prints what its text
//! buffers hold), a screenshot under `target/`, the process's threads
//! listed from `/proc`, a reconnection, and the history shown again by a
//! second run.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

#[path = "../../tests/gui/support.rs"]
mod support;
use support::{target_dir, tool};

const WAIT: Duration = Duration::from_secs(30);

/// One test at a time: keystrokes go to whichever window has the focus,
/// so two tests' windows must not be up together.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The demo process and what it has printed.
struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr_path = target_dir().join(format!("demo-gtk-e2e-{n}.stderr"));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo-gtk"))
            .args(args)
            .arg("--echo")
            .env_remove("WAYLAND_DISPLAY")
            // GTK's cairo renderer: no Mesa threads in the thread count,
            // so every thread left is one we can name.
            .env("GSK_RENDERER", "cairo")
            .env("GDK_DEBUG", "gl-disable")
            .env("BRAID_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start demo-gtk");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr: stderr_path,
        }
    }

    /// Waits for a printed line that `pred` accepts, and returns it.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&[&str]) -> bool) -> String {
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let fields: Vec<&str> = line.split('\t').collect();
                    if pred(&fields) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                    panic!(
                        "the window never showed {what}; it printed:\n{}\nstderr:\n{err}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    fn shown(&mut self, buffer: &str, text: &str) -> String {
        self.wait_for(&format!("{text:?} in {buffer}"), |f| {
            f.len() == 3 && f[0] == "shown" && f[1] == buffer && f[2].contains(text)
        })
    }

    fn status(&mut self, word: &str) -> String {
        self.wait_for(&format!("status {word}"), |f| {
            f.len() == 3 && f[0] == "status" && f[1] == word
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < end, "the demo did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client connection to the scripted server.
struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    got: Vec<String>,
}

impl Peer {
    fn accept(listener: &TcpListener) -> Peer {
        listener.set_nonblocking(true).unwrap();
        let end = Instant::now() + WAIT;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < end, "the demo never connected");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Peer {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            got: Vec::new(),
        }
    }

    /// Reads lines until one starts with `prefix`; returns it.
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("waiting for {prefix:?}: {e}; got {:?}", self.got));
            assert!(
                n > 0,
                "connection closed before {prefix:?}; got {:?}",
                self.got
            );
            let line = line.trim_end().to_owned();
            self.got.push(line.clone());
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    fn send(&mut self, data: &[u8]) {
        self.writer.write_all(data).unwrap();
    }

    /// Registration and the channel join, as a server answers them.
    fn welcome(&mut self, nick: &str, channel: &str) {
        self.expect("NICK ");
        self.expect("USER ");
        self.send(format!(":test.server 001 {nick} :Welcome\r\n").as_bytes());
        self.expect(&format!("JOIN {channel}"));
        self.send(
            format!(
                ":{nick}!u@h JOIN {channel}\r\n\
                 :test.server 332 {nick} {channel} :the e2e topic\r\n\
                 :test.server 353 {nick} = {channel} :{nick} bob\r\n\
                 :test.server 366 {nick} {channel} :End of NAMES\r\n"
            )
            .as_bytes(),
        );
    }
}

fn threads_of(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| {
            let t = t.unwrap().path();
            std::fs::read_to_string(t.join("comm"))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

fn xdotool(args: &[&str]) -> String {
    tool("xdotool", args)
}

#[test]
fn chat_in_a_real_window_typed_with_xdotool() {
    let _serial = serial();
    let display = std::env::var("DISPLAY").unwrap_or_default();
    assert!(
        !display.is_empty(),
        "no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb"
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let history = target_dir().join(format!("demo-gtk-e2e-{}.sqlite3", std::process::id()));
    let _ = std::fs::remove_file(&history);
    let history_arg = history.to_str().unwrap().to_owned();
    let args = [
        addr.as_str(),
        "--nick",
        "tester",
        "--channel",
        "#e2e",
        "--history",
        &history_arg,
    ];

    // 1. The connect form, filled from the command line: Return connects.
    let mut demo = Demo::start(&args);
    demo.wait_for("the window", |f| f[0] == "window");
    let wid = xdotool(&[
        "search",
        "--sync",
        "--onlyvisible",
        "--pid",
        &demo.pid().to_string(),
        "--name",
        "^braid chat$",
    ]);
    let wid = wid.lines().next().unwrap().to_owned();
    xdotool(&["windowfocus", "--sync", &wid]);
    xdotool(&["key", "Return"]);
    let mut peer = Peer::accept(&listener);
    peer.welcome("tester", "#e2e");
    demo.status("connected");
    // (The server sends the topic before the names, so they show in that
    // order.)
    demo.wait_for("the topic", |f| f == ["topic", "#e2e", "the e2e topic"]);
    demo.wait_for("the member list", |f| {
        f == ["members", "#e2e", "bob,tester"]
    });

    // 2. Typed into the entry, sent to the server.
    xdotool(&["type", "--delay", "15", "hello from xdotool"]);
    xdotool(&["key", "Return"]);
    peer.expect("PRIVMSG #e2e :hello from xdotool");
    demo.shown("#e2e", "<tester> hello from xdotool");

    // 3. Bad input from the server changes nothing, an error numeric shows
    //    as an error line, and the reply after them appears in the window.
    peer.send(b"\x00\x01\x02\r\n:\r\nPRIVMSG\r\n:bob!b@h PRIVMSG\r\n\xff\xfe garbage\r\n");
    peer.send(&vec![b'x'; 100_000]);
    peer.send(b"\r\n:test.server 401 tester nobody :No such nick/channel\r\n");
    peer.send(b":bob!b@h PRIVMSG #e2e :reply from the server\r\n");
    demo.shown("*", "No such nick/channel (401)");
    demo.shown("#e2e", "<bob> reply from the server");
    peer.send(b":carol!c@h JOIN #e2e\r\n");
    demo.wait_for("carol in the member list", |f| {
        f == ["members", "#e2e", "bob,carol,tester"]
    });

    // 4. Threads, while connected and chatting: GTK's and the history
    //    database's, and none for the network.
    let threads = threads_of(demo.pid());
    eprintln!("threads while chatting: {} {threads:?}", threads.len());
    let exe = "demo-gtk";
    let mut unknown = Vec::new();
    let (mut main, mut db) = (0, 0);
    for t in &threads {
        match t.as_str() {
            t if t == exe => main += 1,
            t if t.starts_with("braid-db-") => db += 1,
            "gmain" | "gdbus" | "dconf worker" | "pool-spawner" => {}
            t if t.starts_with("pool-") => {} // GLib's GThreadPool workers
            other => unknown.push(other.to_owned()),
        }
    }
    assert_eq!(main, 1, "one thread runs GTK and the network: {threads:?}");
    assert_eq!(db, 1, "one database worker, for the history: {threads:?}");
    assert!(
        unknown.is_empty(),
        "threads that are neither GTK's nor the database's: {unknown:?} in {threads:?}"
    );

    // 5. A screenshot of the window, inspected: the right size, and drawn
    //    (text renders in many shades; an empty window has a handful).
    let shot = target_dir().join("demo-gtk-e2e.png");
    tool("import", &["-window", &wid, shot.to_str().unwrap()]);
    let info = tool("identify", &["-format", "%w %h %k", shot.to_str().unwrap()]);
    let n: Vec<u32> = info.split(' ').map(|v| v.parse().unwrap()).collect();
    eprintln!(
        "screenshot {}: {}x{}, {} colours",
        shot.display(),
        n[0],
        n[1],
        n[2]
    );
    assert!(n[0] >= 600 && n[1] >= 400, "window size {info}");
    assert!(n[2] >= 64, "a rendered window has many colours: {info}");

    // 6. The server goes away: the status says reconnecting, the demo
    //    comes back by itself and joins its channel again.
    drop(peer);
    demo.status("reconnecting");
    let mut peer = Peer::accept(&listener);
    peer.welcome("tester", "#e2e");
    demo.status("connected");
    demo.shown("#e2e", "you joined #e2e");

    // 7. /quit says goodbye; Ctrl+Q closes the window and the process.
    xdotool(&["type", "--delay", "15", "/quit see you"]);
    xdotool(&["key", "Return"]);
    peer.expect("QUIT :see you");
    demo.status("disconnected");
    xdotool(&["key", "ctrl+q"]);
    let status = demo.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    drop(peer);

    // 8. A second run shows the channel's history from the SQLite file.
    let mut args = args.to_vec();
    args.push("--connect");
    let mut demo = Demo::start(&args);
    let mut peer = Peer::accept(&listener);
    peer.welcome("tester", "#e2e");
    // Oldest first.
    demo.wait_for("the remembered message", |f| {
        f.len() == 3
            && f[0] == "history"
            && f[1] == "#e2e"
            && f[2].contains("<tester> hello from xdotool")
    });
    demo.wait_for("the remembered reply", |f| {
        f.len() == 3
            && f[0] == "history"
            && f[1] == "#e2e"
            && f[2].contains("<bob> reply from the server")
    });
    drop(demo);
    let _ = std::fs::remove_file(&history);
}

#[test]
fn a_second_window_joins_the_first_windows_embedded_server() {
    let _serial = serial();
    assert!(
        !std::env::var("DISPLAY").unwrap_or_default().is_empty(),
        "no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb"
    );
    let dir = target_dir();
    let history = |n: &str| {
        let p = dir.join(format!("demo-gtk-e2e-{}-{n}.sqlite3", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p.to_str().unwrap().to_owned()
    };
    let (ha, hb) = (history("a"), history("b"));
    // No address: the first window serves and joins its own chat.
    let mut a = Demo::start(&["--nick", "ann", "--history", &ha]);
    let line = a.wait_for("the embedded server's address", |f| {
        f[0].starts_with("braid demo-gtk: serving IRC on ")
    });
    let addr = line
        .trim_start_matches("braid demo-gtk: serving IRC on ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    a.wait_for("ann and the bot in #braid", |f| {
        f == ["members", "#braid", "ann,braidbot"]
    });
    // The second joins it by address.
    let mut b = Demo::start(&[&addr, "--connect", "--nick", "ben", "--history", &hb]);
    b.shown("#braid", "<braidbot> welcome, ben!");
    a.shown("#braid", "ben joined");
    a.wait_for("ben in ann's member list", |f| {
        f == ["members", "#braid", "ann,ben,braidbot"]
    });
    drop(b);
    a.shown("#braid", "ben quit");
    let _ = std::fs::remove_file(&ha);
    let _ = std::fs::remove_file(&hb);
}
