#![cfg(unix)]
//! A real IRC client, Python's `irc` package, against `braid chat`.
//! `./scripts/test.sh` installs it into a venv and sets BRAID_PYTHON.

mod common;

use std::io::{BufRead, BufReader, Write};

use common::read_until;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

const CLIENT: &str = r##"
import sys, time
import irc.client

host, port = sys.argv[1], int(sys.argv[2])
reactor = irc.client.Reactor()
conn = reactor.server().connect(host, port, "pybot", username="pybot", ircname="Python irc")
state = {"done": False, "joined": False}

def on_welcome(c, e):
    print("welcome", e.target, flush=True)
    c.join("#py")

def on_join(c, e):
    if e.source.nick == "pybot":
        state["joined"] = True
        c.privmsg("#py", "hello from python")
        c.action("#py", "wags its tail")

def on_namreply(c, e):
    print("names", e.arguments[-1], flush=True)

def on_pubmsg(c, e):
    print("pubmsg", e.source.nick, e.arguments[0], flush=True)
    if e.arguments[0] == "pong from rust":
        c.topic("#py", "set by python")

def on_topic(c, e):
    print("topic", e.arguments[-1], flush=True)
    state["done"] = True
    c.quit("bye from python")

for kind, fn in [("welcome", on_welcome), ("join", on_join), ("namreply", on_namreply),
                 ("pubmsg", on_pubmsg), ("topic", on_topic)]:
    conn.add_global_handler(kind, fn)

deadline = time.time() + 20
while not state["done"] and time.time() < deadline:
    reactor.process_once(0.1)
sys.exit(0 if state["done"] else 1)
"##;

#[test]
fn pythons_irc_client_chats_with_a_raw_client_through_braid_chat() {
    let python = std::env::var("BRAID_PYTHON")
        .expect("BRAID_PYTHON is not set: run the suite through ./scripts/test.sh, which installs Python's irc package");
    let mut server = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["chat", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr: std::net::SocketAddr = first.trim().rsplit(' ').next().unwrap().parse().unwrap();

    // A plain client in the channel first, to talk to the Python one.
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    write!(w, "NICK rusty\r\nUSER rusty 0 * :Rusty\r\nJOIN #py\r\n").unwrap();
    read_until(&mut r, " 366 ");

    let py = Command::new(python)
        .args([
            "-c",
            CLIENT,
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let joined = read_until(&mut r, "JOIN");
    assert!(
        joined
            .last()
            .unwrap()
            .starts_with(":pybot!pybot@127.0.0.1 JOIN"),
        "{joined:?}"
    );
    let said = read_until(&mut r, "hello from python");
    assert!(
        said.last()
            .unwrap()
            .contains("PRIVMSG #py :hello from python"),
        "{said:?}"
    );
    let acted = read_until(&mut r, "ACTION");
    assert!(
        acted
            .last()
            .unwrap()
            .contains("\x01ACTION wags its tail\x01"),
        "{acted:?}"
    );
    write!(w, "PRIVMSG #py :pong from rust\r\n").unwrap();
    let topic = read_until(&mut r, "TOPIC");
    assert!(
        topic.last().unwrap().ends_with("TOPIC #py :set by python"),
        "{topic:?}"
    );
    let quit = read_until(&mut r, "QUIT");
    assert!(quit.last().unwrap().contains("bye from python"), "{quit:?}");

    let out = py.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("welcome pybot"), "{stdout}");
    assert!(
        stdout.contains("names pybot rusty") || stdout.contains("names rusty pybot"),
        "{stdout}"
    );
    assert!(stdout.contains("pubmsg rusty pong from rust"), "{stdout}");
    let _ = server.kill();
    let _ = server.wait();
}
