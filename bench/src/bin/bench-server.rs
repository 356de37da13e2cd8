//! An echo server of one kind, in a process of its own, for the `compare`
//! harness: braid under each host, its single-threaded peers, and the
//! limit loop. Prints `listening PORT` once it accepts connections.
//!
//! ```text
//! bench-server --kind braid|braid-glib|braid-calloop|tokio|smol|limit [--port P]
//! bench-server --kind braid-tls|tokio-tls [--port P]
//! ```
//!
//! The `-tls` kinds echo through TLS (rustls with ring in both, the test
//! certificate from `braid::testing::tls`).
//!
//! Every kind echoes what it reads, with TCP_NODELAY on, reading up to
//! 64 KiB at a time where it chooses its buffer (tokio and smol use their
//! own `io::copy`, as their users would).

use braid_tls::prelude::*;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use braid::{Address, Protocol, Reactor, Transport};

/// braid's echo as a user writes it: the transport is its own producer,
/// so reading stops while the peer is not taking the echo (as the limit
/// loop and `io::copy` do).
struct Echo;

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        let _ = t.set_nodelay(true);
        let _ = t.register_producer(std::rc::Rc::new(t.clone()), true);
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

fn announce(port: u16) {
    println!("listening {port}");
    let _ = io::stdout().flush();
}

fn braid_server(host: &str, addr: SocketAddr) {
    let reactor = Reactor::new().unwrap();
    let port = reactor.listen_tcp(addr, |_: &Address| Echo).unwrap();
    announce(port.local_addr().port());
    braid_bench::run_under(host, &reactor).expect("the host starts");
}

fn braid_tls_server(addr: SocketAddr) {
    let reactor = Reactor::new().unwrap();
    let config = braid_tls::testing::server_config();
    let port = reactor
        .listen_tls(addr, |_: &Address| Echo, &config)
        .unwrap();
    announce(port.local_addr().port());
    reactor.run().unwrap();
}

fn tokio_tls_server(addr: SocketAddr) {
    let config = braid_tls::testing::server_config().build().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        announce(listener.local_addr().unwrap().port());
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::task::spawn_local(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let (mut r, mut w) = tokio::io::split(tls);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

fn tokio_server(addr: SocketAddr) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        announce(listener.local_addr().unwrap().port());
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::task::spawn_local(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

fn smol_server(addr: SocketAddr) {
    let ex = async_executor::LocalExecutor::new();
    async_io::block_on(ex.run(async {
        let listener = async_io::Async::<TcpListener>::bind(addr).unwrap();
        announce(listener.get_ref().local_addr().unwrap().port());
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.get_ref().set_nodelay(true);
            ex.spawn(async move {
                let r = &s;
                let mut w = &s;
                let _ = futures_lite::io::copy(r, &mut w).await;
            })
            .detach();
        }
    }));
}

/// The practical limit: `polling` with no abstraction above it. Level
/// triggered, one 64 KiB buffer, a connection's unsent bytes kept until
/// writable (and its reading paused meanwhile).
fn limit_server(addr: SocketAddr) {
    use polling::{Event, Events, PollMode, Poller};
    struct Conn {
        s: TcpStream,
        pending: Vec<u8>,
    }
    let listener = TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let poller = Poller::new().unwrap();
    // SAFETY: every source is deleted from the poller before it is dropped.
    unsafe { poller.add_with_mode(&listener, Event::readable(0), PollMode::Level) }.unwrap();
    announce(listener.local_addr().unwrap().port());
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Events::new();
    loop {
        events.clear();
        poller.wait(&mut events, None).unwrap();
        for ev in events.iter() {
            if ev.key == 0 {
                while let Ok((s, _)) = listener.accept() {
                    s.set_nonblocking(true).unwrap();
                    let _ = s.set_nodelay(true);
                    let i = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    // SAFETY: as above.
                    unsafe { poller.add_with_mode(&s, Event::readable(i + 1), PollMode::Level) }
                        .unwrap();
                    conns[i] = Some(Conn {
                        s,
                        pending: Vec::new(),
                    });
                }
                continue;
            }
            let i = ev.key - 1;
            let Some(c) = conns[i].as_mut() else { continue };
            let mut close = false;
            if ev.writable && !c.pending.is_empty() {
                match c.s.write(&c.pending) {
                    Ok(n) => {
                        c.pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => close = true,
                }
                if c.pending.is_empty() {
                    poller
                        .modify_with_mode(&c.s, Event::readable(ev.key), PollMode::Level)
                        .unwrap();
                }
            }
            if ev.readable && c.pending.is_empty() && !close {
                match c.s.read(&mut buf) {
                    Ok(0) => close = true,
                    Ok(n) => match c.s.write(&buf[..n]) {
                        Ok(m) if m == n => {}
                        Ok(m) => {
                            c.pending.extend_from_slice(&buf[m..n]);
                            poller
                                .modify_with_mode(&c.s, Event::writable(ev.key), PollMode::Level)
                                .unwrap();
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            c.pending.extend_from_slice(&buf[..n]);
                            poller
                                .modify_with_mode(&c.s, Event::writable(ev.key), PollMode::Level)
                                .unwrap();
                        }
                        Err(_) => close = true,
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => close = true,
                }
            }
            if close {
                if let Some(c) = conns[i].take() {
                    let _ = poller.delete(&c.s);
                    free.push(i);
                }
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    braid_bench::raise_fd_limit();
    let kind: String = braid_bench::arg(&args, "--kind", "braid".to_string());
    let port: u16 = braid_bench::arg(&args, "--port", 0);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match kind.as_str() {
        "braid" => braid_server("standalone", addr),
        "braid-glib" => braid_server("glib", addr),
        "braid-calloop" => braid_server("calloop", addr),
        "tokio" => tokio_server(addr),
        "braid-tls" => braid_tls_server(addr),
        "tokio-tls" => tokio_tls_server(addr),
        "smol" => smol_server(addr),
        "limit" => limit_server(addr),
        other => {
            eprintln!("bench-server: unknown kind {other}");
            std::process::exit(2);
        }
    }
}
