#![cfg(unix)]
//! The canvas server (`demo-winit --server-only`) as a process, spoken to over real sockets in the wire
//! format: the handshake, a late joiner getting the picture, the rate
//! limit, bad versions and bad frames, and the picture surviving a
//! restart through `--save`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use demo_winit::proto::{ClientMsg, ServerMsg, ERR_MALFORMED, ERR_RATE, ERR_VERSION, VERSION};

fn start(save: &std::path::Path, port: u16) -> (Child, String) {
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-winit"))
        .args(["--server-only", "--listen", &listen, "--rate", "50"])
        .arg("--save")
        .arg(save)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (child, first.trim().rsplit(' ').next().unwrap().to_owned())
}

struct Peer(TcpStream);

impl Peer {
    fn connect(addr: &str) -> Peer {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Peer(s)
    }
    fn send(&mut self, m: &ClientMsg) {
        let p = m.encode();
        self.raw(&[&(p.len() as u32).to_be_bytes()[..], &p].concat());
    }
    fn raw(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }
    /// The next message, or None at end of stream.
    fn recv(&mut self) -> Option<ServerMsg> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let mut p = vec![0; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut p).unwrap();
        Some(ServerMsg::decode(&p).expect("the server speaks the format"))
    }
    /// Messages up to and including the first that `pred` accepts.
    fn until(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> Vec<ServerMsg> {
        let mut out = Vec::new();
        loop {
            let m = self.recv().expect("the connection stayed open");
            let done = pred(&m);
            out.push(m);
            if done {
                return out;
            }
        }
    }
    fn hello(addr: &str, name: &str) -> (Peer, u32, Vec<ServerMsg>) {
        let mut p = Peer::connect(addr);
        p.send(&ClientMsg::Hello {
            version: VERSION,
            name: name.into(),
        });
        let got = p.until(|m| *m == ServerMsg::Ready);
        let id = match got[0] {
            ServerMsg::Welcome { id, version, .. } => {
                assert_eq!(version, VERSION);
                id
            }
            ref other => panic!("first came {other:?}"),
        };
        (p, id, got)
    }
}

#[test]
fn canvas_server_shares_strokes_limits_rates_and_keeps_the_picture() {
    let save = std::env::temp_dir().join(format!("braid-cli-canvas-{}.bin", std::process::id()));
    let _ = std::fs::remove_file(&save);
    let (mut child, addr) = start(&save, 0);

    let (mut ann, ann_id, _) = Peer::hello(&addr, "ann");
    let stroke = vec![(10, 10), (50, 60), (90, 10)];
    ann.send(&ClientMsg::Stroke {
        width: 3,
        points: stroke.clone(),
    });
    ann.send(&ClientMsg::Ping { token: 7 });
    ann.until(|m| *m == ServerMsg::Pong { token: 7 });

    // A late joiner gets the picture and the users present.
    let (mut ben, ben_id, got) = Peer::hello(&addr, "ben");
    assert!(got.contains(&ServerMsg::Stroke {
        id: ann_id,
        colour: match got.iter().find_map(|m| match m {
            ServerMsg::Joined { id, colour, .. } if *id == ann_id => Some(*colour),
            _ => None,
        }) {
            Some(c) => c,
            None => panic!("ann is listed: {got:?}"),
        },
        width: 3,
        points: stroke.clone(),
    }));
    assert!(got.iter().any(
        |m| matches!(m, ServerMsg::Joined { id, name, .. } if *id == ben_id && name == "ben")
    ));
    // ann hears of ben; ben hears ann's cursor.
    ann.until(|m| matches!(m, ServerMsg::Joined { id, .. } if *id == ben_id));
    ann.send(&ClientMsg::Cursor { x: 5, y: 6 });
    ben.until(|m| {
        *m == ServerMsg::Cursor {
            id: ann_id,
            x: 5,
            y: 6,
        }
    });

    // The rate limit: 1,000 moves at once; some are dropped, with word.
    for i in 0..1000u16 {
        ann.send(&ClientMsg::Cursor { x: i % 700, y: 1 });
    }
    ann.until(|m| matches!(m, ServerMsg::Error { code, .. } if *code == ERR_RATE));
    // Once ann's ping after the flood is answered, the server has handled
    // the whole flood; ben's ping after that comes back behind every move
    // relayed to him.
    ann.send(&ClientMsg::Ping { token: 8 });
    ann.until(|m| *m == ServerMsg::Pong { token: 8 });
    ben.send(&ClientMsg::Ping { token: 9 });
    let relayed = ben
        .until(|m| *m == ServerMsg::Pong { token: 9 })
        .iter()
        .filter(|m| matches!(m, ServerMsg::Cursor { .. }))
        .count();
    assert!(
        (90..500).contains(&relayed),
        "about the burst (100 at --rate 50) relayed, not 1,000: {relayed}"
    );

    // A peer from another version is told so and let go.
    let mut old = Peer::connect(&addr);
    old.send(&ClientMsg::Hello {
        version: VERSION + 1,
        name: "future".into(),
    });
    assert!(matches!(old.recv(), Some(ServerMsg::Error { code, .. }) if code == ERR_VERSION));
    assert!(old.recv().is_none(), "closed after the error");
    // Garbage: an error, then closed.
    let mut junk = Peer::connect(&addr);
    junk.raw(b"\x00\x00\x00\x03\x7f\x00\x00");
    assert!(matches!(junk.recv(), Some(ServerMsg::Error { code, .. }) if code == ERR_MALFORMED));
    assert!(junk.recv().is_none());
    // A frame longer than allowed: refused without reading it all.
    let mut big = Peer::connect(&addr);
    big.raw(&u32::MAX.to_be_bytes());
    assert!(matches!(big.recv(), Some(ServerMsg::Error { code, .. }) if code == ERR_MALFORMED));

    // Restart: the picture comes back from --save.
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let (mut child, addr) = start(&save, port);
    let (_p, _, got) = Peer::hello(&addr, "cat");
    assert!(
        got.iter()
            .any(|m| matches!(m, ServerMsg::Stroke { points, .. } if *points == stroke)),
        "the saved stroke: {got:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&save);
}
