//! Load over real loopback TCP into a real Maildir: 50 clients at once,
//! 20 messages each, every message stored exactly once, while a client
//! that never reads its replies stalls only itself.

use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;

use braid::Reactor;
use braid_mail::client::{send, ClientConfig, TlsPolicy};
use braid_mail::server::{Server, SessionConfig};
use braid_mail::Maildir;

#[test]
fn fifty_clients_twenty_messages_each_exactly_once_beside_a_stalled_reader() {
    let reactor = Reactor::new().unwrap();
    let root = std::env::temp_dir().join(format!("braid-mail-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let users: Vec<String> = (0..5).map(|i| format!("user{i}")).collect();
    let maildir = Maildir::new(&reactor, &root, ["example.org"]).users(&users);
    let server = Rc::new(Server::new(&reactor, SessionConfig::default(), maildir));
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), server.factory())
        .unwrap();
    let addr = port.local_addr();

    // The staller: pipelines NOOPs and never reads a reply, so the
    // server's replies to it back up.
    let staller = std::net::TcpStream::connect(addr).unwrap();
    staller.set_nonblocking(true).unwrap();
    let noops = b"EHLO staller\r\n"
        .iter()
        .copied()
        .chain(b"NOOP\r\n".repeat(400_000))
        .collect::<Vec<u8>>();
    let mut w = &staller;
    let mut sent_noops = 0;
    while sent_noops < noops.len() {
        match w.write(&noops[sent_noops..]) {
            Ok(n) => sent_noops += n,
            Err(_) => break,
        }
    }

    let r = reactor.clone();
    let results = reactor
        .block_on(async move {
            let mut tasks = Vec::new();
            for c in 0..50 {
                let r2 = r.clone();
                let user = format!("user{}@example.org", c % 5);
                tasks.push(r.spawn_local(async move {
                    let config = ClientConfig {
                        tls: TlsPolicy::Never,
                        ..ClientConfig::default()
                    };
                    let mut ok = 0;
                    for m in 0..20 {
                        let msg = format!(
                            "Subject: load\r\nX-Load: c{c}-m{m}\r\n\r\nbody of c{c} m{m}\r\n"
                        );
                        let to = [user.clone()];
                        let host = addr.ip().to_string();
                        match send(
                            &r2,
                            &host,
                            addr.port(),
                            &config,
                            "load@example.net",
                            &to,
                            msg.as_bytes(),
                        )
                        .await
                        {
                            Ok(_) => ok += 1,
                            Err(e) => panic!("c{c} m{m}: {e}"),
                        }
                    }
                    ok
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            total
        })
        .unwrap();
    assert_eq!(results, 1000);
    drop(staller);

    let mut seen: HashMap<String, usize> = HashMap::new();
    for u in &users {
        for e in std::fs::read_dir(root.join(u).join("new")).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("X-Load: "))
                .expect("an X-Load header")
                .to_owned();
            assert!(text.contains(&format!("Delivered-To: {u}@example.org")));
            *seen.entry(id).or_default() += 1;
        }
        assert_eq!(
            std::fs::read_dir(root.join(u).join("tmp")).unwrap().count(),
            0
        );
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|&n| n == 1));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn send_deferred_fires_with_the_servers_reply() {
    let reactor = Reactor::new().unwrap();
    let root = std::env::temp_dir().join(format!("braid-mail-deferred-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let maildir = Maildir::new(&reactor, &root, ["example.org"]).users(["ann"]);
    let server = Rc::new(Server::new(&reactor, SessionConfig::default(), maildir));
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), server.factory())
        .unwrap();
    let d = braid_mail::client::send_deferred(
        &reactor,
        "127.0.0.1",
        port.local_addr().port(),
        &ClientConfig::default(),
        "me@example.net",
        &["ann@example.org".to_owned()],
        b"Subject: deferred\r\n\r\nhi\r\n".to_vec(),
    );
    let code = d.add_callback(|sent| sent.reply.code());
    assert_eq!(reactor.block_on(code).unwrap().unwrap(), 250);
    assert_eq!(
        std::fs::read_dir(root.join("ann").join("new"))
            .unwrap()
            .count(),
        1
    );
    let _ = std::fs::remove_dir_all(&root);
}
