//! Helpers shared by braid-web's integration tests.
#![allow(dead_code, unused_imports)]

pub use std::cell::{Cell, RefCell};
pub use std::io::{Read, Write};
pub use std::net::{SocketAddr, TcpStream};
pub use std::rc::Rc;
pub use std::sync::mpsc;
pub use std::time::Duration;

pub use braid::testing::{connected_pair, run_until, MemoryReactor};
pub use braid::{Address, Deferred, Factory, Protocol, Reactor, Transport};
pub use braid_web::{
    header, Agent, AgentConfig, Body, BodyError, ClientError, File, FnResource, ForwardProxy,
    HeaderMap, Method, Reply, Request, Resource, Response, ReverseProxy, Site, SiteConfig,
    StatusCode, Tree,
};
pub use futures_util::future::join;

pub fn serve(reactor: &Reactor, root: impl Resource) -> (Site, SocketAddr) {
    let site = Site::new(root);
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), site.clone())
        .unwrap();
    (site, port.local_addr())
}

/// Runs `f` on a thread with blocking std sockets while the reactor runs.
pub fn with_client<T: Send + 'static>(
    reactor: &Reactor,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let mut out = None;
    run_until(reactor, Duration::from_secs(60), || {
        if let Ok(v) = rx.try_recv() {
            out = Some(v);
        }
        out.is_some()
    })
    .unwrap();
    t.join().unwrap();
    out.unwrap()
}

/// Sends raw bytes; reads until `until` is in the answer (or EOF).
pub fn raw(addr: SocketAddr, req: &[u8], until: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while !String::from_utf8_lossy(&out).contains(until) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn block<T: 'static>(
    reactor: &Reactor,
    f: impl std::future::Future<Output = T> + 'static,
) -> T {
    let r = reactor.clone();
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    drop(reactor.spawn_local(async move {
        *o.borrow_mut() = Some(f.await);
    }));
    run_until(&r, Duration::from_secs(60), || out.borrow().is_some()).unwrap();
    let v = out.borrow_mut().take().unwrap();
    v
}

pub fn text(body: &'static str) -> impl Fn(Request) -> Response {
    move |_| Response::text(body)
}

pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "braid-web-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
