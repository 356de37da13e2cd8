#![cfg(unix)]
//! Two `braid chat --cluster` processes on one PostgreSQL: three clients
//! on each exchange 1,000 messages each in one channel, none lost and in
//! order per sender; then one server is killed (SIGKILL) and the other's
//! clients see its users quit and keep chatting.

mod common;
#[path = "../../tests/common/postgres_server.rs"]
mod postgres_server;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{braid, read_until};

const MESSAGES: usize = 1000;

/// What one client has read, kept by its reader thread.
#[derive(Default)]
struct Seen {
    members: BTreeSet<String>,
    /// Messages per sender, in the order they arrived.
    said: BTreeMap<String, Vec<String>>,
    quits: BTreeSet<String>,
}

struct Client {
    nick: String,
    w: TcpStream,
    seen: Arc<Mutex<Seen>>,
}

fn nick_of(prefix: &str) -> String {
    prefix
        .trim_start_matches(':')
        .split('!')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn connect(addr: &str, nick: &str) -> Client {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    write!(w, "NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").unwrap();
    read_until(&mut r, " 376 ");
    write!(w, "JOIN #big\r\n").unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    std::thread::spawn(move || loop {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // The last parameter has a colon only where it needs one.
        let (head, text) = match l.trim_end().split_once(" :") {
            Some((h, t)) => (h.to_owned(), t.to_owned()),
            None => {
                let (h, t) = l.trim_end().rsplit_once(' ').unwrap_or_default();
                (h.to_owned(), t.to_owned())
            }
        };
        let words: Vec<&str> = head.split(' ').collect();
        let mut seen = s2.lock().unwrap();
        match words.get(1).copied() {
            Some("353") => seen.members.extend(text.split(' ').map(str::to_owned)),
            Some("JOIN") => {
                seen.members.insert(nick_of(words[0]));
            }
            Some("QUIT") => {
                let who = nick_of(words[0]);
                seen.members.remove(&who);
                seen.quits.insert(who);
            }
            Some("PRIVMSG") => seen.said.entry(nick_of(words[0])).or_default().push(text),
            _ => {}
        }
    });
    Client {
        nick: nick.to_owned(),
        w,
        seen,
    }
}

/// Waits (real processes, real time) until `done` holds for every client.
fn wait_all(clients: &[Client], what: &str, done: impl Fn(&Seen) -> bool) {
    let end = Instant::now() + Duration::from_secs(120);
    while !clients.iter().all(|c| done(&c.seen.lock().unwrap())) {
        if Instant::now() > end {
            let state: Vec<String> = clients
                .iter()
                .map(|c| {
                    let s = c.seen.lock().unwrap();
                    let said: Vec<(&String, usize)> =
                        s.said.iter().map(|(k, v)| (k, v.len())).collect();
                    format!(
                        "{}: members {:?} quits {:?} said {said:?}",
                        c.nick, s.members, s.quits
                    )
                })
                .collect();
            panic!("timed out waiting for {what}: {state:#?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_clustered_chat_servers_are_one_channel_and_survive_a_death() {
    let pg = postgres_server::Server::start_new();
    let url = pg.url("braid-secret");
    let start = |name: &str| {
        braid(&[
            "chat",
            "--port",
            "0",
            "--name",
            name,
            "--cluster",
            &url,
            "--flood-burst",
            "100000",
            "--flood-per-second",
            "100000",
        ])
    };
    let (mut a, first_a) = start("a.irc");
    let (_b, first_b) = start("b.irc");
    let addr = |first: &str| first.rsplit(' ').next().unwrap().to_owned();
    let (addr_a, addr_b) = (addr(&first_a), addr(&first_b));

    let mut clients: Vec<Client> = Vec::new();
    for (i, addr) in [&addr_a, &addr_a, &addr_a, &addr_b, &addr_b, &addr_b]
        .into_iter()
        .enumerate()
    {
        clients.push(connect(addr, &format!("u{i}")));
    }
    let everyone: BTreeSet<String> = clients.iter().map(|c| c.nick.clone()).collect();
    wait_all(&clients, "everyone in #big", |s| s.members == everyone);

    // 1,000 messages from each of the six, all at once.
    let writers: Vec<_> = clients
        .iter()
        .map(|c| {
            let (mut w, nick) = (c.w.try_clone().unwrap(), c.nick.clone());
            std::thread::spawn(move || {
                let mut out = String::new();
                for i in 0..MESSAGES {
                    out.push_str(&format!("PRIVMSG #big :{nick} says {i}\r\n"));
                }
                w.write_all(out.as_bytes()).unwrap();
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    wait_all(&clients, "every message", |s| {
        s.said.values().map(Vec::len).sum::<usize>() >= 5 * MESSAGES
    });
    for c in &clients {
        let seen = c.seen.lock().unwrap();
        assert_eq!(seen.said.len(), 5, "{}: from the five others", c.nick);
        assert!(!seen.said.contains_key(&c.nick), "no echo to the sender");
        for (from, texts) in &seen.said {
            let want: Vec<String> = (0..MESSAGES).map(|i| format!("{from} says {i}")).collect();
            assert!(
                texts == &want,
                "{} got {from}'s messages lost or out of order",
                c.nick
            );
        }
    }

    // Server A dies without a word: B's clients see A's users quit...
    a.0.kill().unwrap();
    let _ = a.0.wait();
    let (dead, alive) = clients.split_at_mut(3);
    let gone: BTreeSet<String> = dead.iter().map(|c| c.nick.clone()).collect();
    wait_all(alive, "the dead server's users to quit", |s| {
        gone.is_subset(&s.quits) && s.members.len() == 3
    });
    // ... and keep chatting.
    write!(alive[0].w, "PRIVMSG #big :still here\r\n").unwrap();
    let from = alive[0].nick.clone();
    wait_all(&alive[1..], "a message after the death", |s| {
        s.said.get(&from).and_then(|v| v.last()).map(String::as_str) == Some("still here")
    });
}

#[test]
fn chat_users_in_postgresql_set_by_braid_passwd() {
    let pg = postgres_server::Server::start_new();
    let url = pg.url("braid-secret");
    // `braid passwd` with a URL writes the argon2 hash into braid_users.
    let mut passwd = std::process::Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["passwd", &url, "ann"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    passwd
        .stdin
        .take()
        .unwrap()
        .write_all(b"ann's secret\n")
        .unwrap();
    let out = passwd.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ann set in PostgreSQL"));

    let (_chat, first) = braid(&["chat", "--port", "0", "--users-postgres", &url]);
    let addr = first.rsplit(' ').next().unwrap().to_owned();
    let login = |pass: &str| {
        let s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        write!(w, "PASS :{pass}\r\nNICK ann\r\nUSER ann 0 * :ann\r\n").unwrap();
        let mut l = String::new();
        loop {
            l.clear();
            if r.read_line(&mut l).unwrap_or(0) == 0 {
                return "closed".to_owned();
            }
            if l.contains(" 001 ") || l.contains(" 464 ") {
                return l.trim().to_owned();
            }
        }
    };
    assert!(
        login("ann's secret").contains(" 001 "),
        "the right password"
    );
    assert!(login("wrong").contains(" 464 "), "a wrong one");
}
