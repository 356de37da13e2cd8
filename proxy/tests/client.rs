//! braid's SOCKS client over real loopback TCP: through braid's own SOCKS
//! server (an aio stream, and a protocol whose first write comes before
//! the tunnel is up), a refusal typed, and through Dante (Debian's
//! `dante-server`, which `./scripts/test.sh` installs), with and without
//! a name to resolve.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;

use braid::aio::{Stream, TcpListener};
use braid::{CloseReason, Protocol, Reactor, Transport};
use braid_proxy::socks::client::{connect_socks, connect_stream, Target, Version};
use braid_proxy::SocksServer;
use futures_util::{AsyncReadExt, AsyncWriteExt};

/// An echo server on loopback, served by `reactor`.
fn echo(reactor: &Reactor) -> SocketAddr {
    let l = TcpListener::bind(reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr();
    let r = reactor.clone();
    drop(reactor.spawn_local(async move {
        loop {
            let Ok(mut s) = l.accept().await else { return };
            drop(r.spawn_local(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }));
        }
    }));
    addr
}

/// braid's SOCKS server on loopback, served by `reactor`.
fn socks_server(reactor: &Reactor) -> SocketAddr {
    reactor
        .listen_tcp(
            "127.0.0.1:0".parse().unwrap(),
            SocksServer::new(reactor).factory(),
        )
        .unwrap()
        .local_addr()
}

async fn ping(mut s: Stream) -> String {
    s.write_all(b"ping through socks").await.unwrap();
    let mut buf = [0u8; 18];
    s.read_exact(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn through_braids_own_socks_server() {
    let reactor = Reactor::new().unwrap();
    let target = echo(&reactor);
    let proxy = socks_server(&reactor);
    let r = reactor.clone();
    let (a, b, refused) = reactor
        .block_on(async move {
            let by_name = Target::Name("localhost".into(), target.port());
            let a = ping(
                connect_stream(&r, proxy, Version::V5, by_name.clone(), None)
                    .await
                    .unwrap(),
            )
            .await;
            let b = ping(
                connect_stream(&r, proxy, Version::V4a, by_name, None)
                    .await
                    .unwrap(),
            )
            .await;
            let closed = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let e = connect_stream(&r, proxy, Version::V5, Target::Addr(closed), None)
                .await
                .unwrap_err();
            (a, b, e)
        })
        .unwrap();
    assert_eq!(a, "ping through socks");
    assert_eq!(b, "ping through socks");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    // The aio stream keeps the kind and the text of why it was lost.
    assert!(
        refused
            .to_string()
            .contains("the SOCKS proxy refused: connection refused (5)"),
        "{refused}"
    );
}

/// A protocol that writes in `connection_made`, before the tunnel is up,
/// and records what comes back.
struct Early {
    got: Rc<RefCell<Vec<u8>>>,
    done: Rc<RefCell<Option<String>>>,
}

impl Protocol for Early {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"early bytes");
    }
    fn handshake_completed(&mut self, _: &Transport) {
        self.got.borrow_mut().extend_from_slice(b"[up]");
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        self.got.borrow_mut().extend_from_slice(d);
        if self.got.borrow().ends_with(b"early bytes") {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, r: &CloseReason) {
        *self.done.borrow_mut() = Some(r.to_string());
    }
}

#[test]
fn a_protocol_over_connect_socks_never_sees_the_handshake() {
    let reactor = Reactor::new().unwrap();
    let target = echo(&reactor);
    let proxy = socks_server(&reactor);
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let done: Rc<RefCell<Option<String>>> = Rc::default();
    let (g, d) = (got.clone(), done.clone());
    let _c = connect_socks(
        &reactor,
        proxy,
        Version::V5,
        Target::Addr(target),
        None,
        move |_: &braid::Address| Early {
            got: g.clone(),
            done: d.clone(),
        },
        None,
    );
    let d2 = done.clone();
    braid::testing::run_until(&reactor, std::time::Duration::from_secs(20), move || {
        d2.borrow().is_some()
    })
    .unwrap();
    assert_eq!(&*got.borrow(), b"[up]early bytes");
}

struct Dante(Child);

impl Drop for Dante {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn through_dante() {
    let dir = std::env::temp_dir().join(format!("braid-dante-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("danted.conf");
    let mut f = std::fs::File::create(&conf).unwrap();
    write!(
        f,
        "logoutput: {}/danted.log\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
         clientmethod: none\nsocksmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
         client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\nsocks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n",
        dir.display()
    )
    .unwrap();
    let danted = ["/usr/sbin/danted", "/usr/sbin/sockd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("danted (Debian's dante-server; ./scripts/test.sh installs it)");
    let _dante = Dante(
        Command::new(danted)
            .args(["-f", conf.to_str().unwrap(), "-N", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for it to listen (a real process on real time).
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(proxy).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let reactor = Reactor::new().unwrap();
    let target = echo(&reactor);
    let r = reactor.clone();
    let (a, b) = reactor
        .block_on(async move {
            let a = ping(
                connect_stream(&r, proxy, Version::V5, Target::Addr(target), None)
                    .await
                    .unwrap(),
            )
            .await;
            let name = Target::Name("localhost".into(), target.port());
            let b = ping(
                connect_stream(&r, proxy, Version::V5, name, None)
                    .await
                    .unwrap(),
            )
            .await;
            (a, b)
        })
        .unwrap();
    assert_eq!(a, "ping through socks");
    assert_eq!(b, "ping through socks");
}
