// The peers (openssl, curl, Python, tinyproxy) are Linux programs, which a
// Windows build under Wine cannot start: Unix only.
#![cfg(unix)]
//! The Agent through proxies: a real HTTP proxy no one here wrote
//! (Debian's tinyproxy, which `./scripts/test.sh` installs: absolute-form
//! requests for HTTP, `CONNECT` tunnels for HTTPS, Basic login) and
//! braid's SOCKS server (SOCKS5 with and without login, SOCKS4a).

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Child, Command, Stdio};

use braid_web::{Proxy, ProxyKind};
use support::*;

struct Tinyproxy(Child, std::path::PathBuf);

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn tinyproxy(name: &str) -> (Tinyproxy, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("braid-tinyproxy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("tinyproxy.conf");
    // As root tinyproxy wants a user to drop to.
    let user = if unsafe_is_root() {
        "User nobody\nGroup nogroup\n"
    } else {
        ""
    };
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nMaxClients 20\n\
             BasicAuth sam s3cret\nDisableViaHeader Yes\nLogLevel Error\n{user}"
        ),
    )
    .unwrap();
    let child = Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tinyproxy (Debian's tinyproxy-bin; ./scripts/test.sh installs it)");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < end, "tinyproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Tinyproxy(child, dir), port)
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A plain site and a TLS site (the test PKI: `localhost`) that say who
/// asked and how.
fn sites(reactor: &Reactor) -> (SocketAddr, u16, braid::ListeningPort) {
    let (_site, plain) = serve(
        reactor,
        FnResource::leaf(|req: Request| {
            let auth = req.header("proxy-authorization").unwrap_or("-").to_owned();
            Response::text(format!("plain {} proxy-auth={auth}", req.path()))
        }),
    );
    let tls = Site::new(FnResource::leaf(|req: Request| {
        Response::text(format!("secure={} {}", req.is_secure(), req.path()))
    }))
    .listen_tls(
        reactor,
        "127.0.0.1:0".parse().unwrap(),
        &braid_tls::testing::server_config(),
    )
    .unwrap();
    (plain, tls.local_addr().port(), tls)
}

fn agent(reactor: &Reactor, proxy: Proxy) -> Agent {
    let cfg =
        braid_tls::ClientConfig::with_root_pem(braid_tls::testing::CA_PEM.as_bytes()).unwrap();
    Agent::with_config(reactor, AgentConfig::default().with_proxy(proxy)).with_tls(cfg)
}

#[test]
fn through_tinyproxy_http_and_https() {
    common::init_tracing();
    let (_tp, port) = tinyproxy("ok");
    let reactor = Reactor::new().unwrap();
    let (plain, tls_port, _tls) = sites(&reactor);
    let good = agent(
        &reactor,
        Proxy::new(ProxyKind::Http, "127.0.0.1", port).with_auth("sam", "s3cret"),
    );
    let bad = agent(
        &reactor,
        Proxy::new(ProxyKind::Http, "127.0.0.1", port).with_auth("sam", "wrong"),
    );
    let none = agent(&reactor, Proxy::new(ProxyKind::Http, "127.0.0.1", port));
    let got = block(&reactor, async move {
        let p = plain.port();
        let http = good
            .get(&format!("http://127.0.0.1:{p}/a"))
            .await
            .unwrap()
            .text(1000)
            .await
            .unwrap();
        let https = good
            .get(&format!("https://localhost:{tls_port}/b"))
            .await
            .unwrap()
            .text(1000)
            .await
            .unwrap();
        let again = good
            .get(&format!("https://localhost:{tls_port}/c"))
            .await
            .unwrap()
            .text(1000)
            .await
            .unwrap();
        // A plain request without the login: the proxy's 407 is the answer.
        let refused_plain = none
            .get(&format!("http://127.0.0.1:{p}/a"))
            .await
            .unwrap()
            .status();
        // A tunnel with the wrong login: refused, typed.
        let refused_tunnel = bad
            .get(&format!("https://localhost:{tls_port}/b"))
            .await
            .unwrap_err();
        (
            http,
            https,
            again,
            good.connections_made(),
            refused_plain,
            refused_tunnel,
        )
    });
    // The proxy took the login off before passing the request on.
    assert_eq!(got.0, "plain /a proxy-auth=-");
    assert_eq!(got.1, "secure=true /b");
    assert_eq!(got.2, "secure=true /c");
    assert_eq!(got.3, 2, "one connection per origin, the tunnel reused");
    assert_eq!(got.4, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    // tinyproxy 1.11 answers a bad login on CONNECT with 401, not 407.
    assert!(
        matches!(&got.5, ClientError::ProxyRefused(401 | 407, why) if why.contains("CONNECT localhost:")),
        "{:?}",
        got.5
    );
}

#[test]
fn through_braids_socks_server() {
    use braid_cred::{InMemoryChecker, Portal};
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let (plain, tls_port, _tls) = sites(&reactor);
    let open = reactor
        .listen_tcp(
            "127.0.0.1:0".parse().unwrap(),
            braid_proxy::SocksServer::new(&reactor).factory(),
        )
        .unwrap()
        .local_addr();
    let portal = Portal::new(&reactor, |_: &str, _: ()| ((), None))
        .checker(InMemoryChecker::new().user("sam", "s3cret"));
    let locked = reactor
        .listen_tcp(
            "127.0.0.1:0".parse().unwrap(),
            braid_proxy::SocksServer::new(&reactor)
                .users(portal)
                .factory(),
        )
        .unwrap()
        .local_addr();
    let via = |kind, addr: SocketAddr| agent(&reactor, Proxy::new(kind, "127.0.0.1", addr.port()));
    let socks5h = via(ProxyKind::Socks5h, open);
    let socks5 = via(ProxyKind::Socks5, open);
    let socks4a = via(ProxyKind::Socks4a, open);
    let login = agent(
        &reactor,
        Proxy::parse(&format!("socks5h://sam:s3cret@127.0.0.1:{}", locked.port())).unwrap(),
    );
    let no_login = via(ProxyKind::Socks5h, locked);
    let got = block(&reactor, async move {
        let p = plain.port();
        let mut out = Vec::new();
        for a in [&socks5h, &socks5, &socks4a, &login] {
            let http = a.get(&format!("http://localhost:{p}/x")).await.unwrap();
            let https = a
                .get(&format!("https://localhost:{tls_port}/y"))
                .await
                .unwrap();
            out.push(format!(
                "{} | {}",
                http.text(1000).await.unwrap(),
                https.text(1000).await.unwrap()
            ));
        }
        let refused = no_login
            .get(&format!("http://localhost:{p}/x"))
            .await
            .unwrap_err();
        (out, refused)
    });
    for line in &got.0 {
        assert_eq!(line, "plain /x proxy-auth=- | secure=true /y");
    }
    assert!(matches!(got.1, ClientError::Connect(_, _)), "{:?}", got.1);
}

#[test]
fn no_proxy_hosts_go_direct() {
    let cfg = AgentConfig {
        no_proxy: vec!["localhost".into()],
        ..AgentConfig::default().with_proxy(Proxy::new(ProxyKind::Http, "127.0.0.1", 1))
    };
    // The proxy's port is closed: a request that went through it would
    // fail; localhost is exempt and reaches the site.
    let reactor = Reactor::new().unwrap();
    let (plain, _, _tls) = sites(&reactor);
    let agent = Agent::with_config(&reactor, cfg);
    let got = block(&reactor, async move {
        let direct = agent
            .get(&format!("http://localhost:{}/d", plain.port()))
            .await
            .map(|r| r.status());
        let proxied = agent
            .get(&format!("http://127.0.0.1:{}/d", plain.port()))
            .await;
        (direct, proxied.map(|r| r.status()))
    });
    assert_eq!(got.0.unwrap(), StatusCode::OK);
    assert!(
        matches!(&got.1, Err(ClientError::Connect(std::io::ErrorKind::ConnectionRefused, why)) if why.contains("proxy 127.0.0.1:1")),
        "{:?}",
        got.1
    );
}
