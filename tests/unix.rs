#![cfg(unix)]
//! Unix stream sockets over real sockets: echo with path addresses, stale
//! socket files, permissions, cleanup on stop, and file descriptors passed
//! with SCM_RIGHTS in order with the bytes they travel with.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

use braid::testing::run_until;
use braid::{
    Address, ClientFactory, ConnectError, Connector, Factory, Protocol, Reactor, Transport,
    UnixListenOptions,
};

#[path = "common/unix_fds.rs"]
mod unix_fds;
use unix_fds::*;

#[test]
fn echo_over_a_unix_socket_with_path_addresses() {
    let d = dir("echo");
    let path = d.join("echo.sock");
    let reactor = Reactor::new().unwrap();
    let port = reactor.listen_unix(&path, |_: &Address| Echo).unwrap();
    assert_eq!(port.path(), path);
    let log = Rc::new(RefCell::new(Log::default()));
    let l = log.clone();
    reactor.connect_unix(
        &path,
        move |_: &Address| Client {
            log: l.clone(),
            send: b"over a path",
        },
        None,
    );
    run_until(&reactor, LIMIT, || log.borrow().got == b"over a path").unwrap();
    assert_eq!(log.borrow().peer, Some(Address::Unix(Some(path.clone()))));
    // Plain std clients work too.
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.write_all(b"std").unwrap();
    let h = std::thread::spawn(move || {
        let mut b = [0u8; 3];
        s.read_exact(&mut b).unwrap();
        b
    });
    run_until(&reactor, LIMIT, || h.is_finished()).unwrap();
    assert_eq!(&h.join().unwrap(), b"std");
    port.stop_listening();
    assert!(!path.exists(), "stop_listening removes the socket file");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn stale_files_permissions_and_live_listeners() {
    let d = dir("stale");
    let path = d.join("s.sock");
    let reactor = Reactor::new().unwrap();
    // A socket file left by a dead process: replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let opts = UnixListenOptions {
        mode: 0o600,
        ..UnixListenOptions::default()
    };
    let port = reactor
        .listen_unix_with(&path, |_: &Address| Echo, &opts)
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A live listener is not stolen.
    let e = reactor.listen_unix(&path, |_: &Address| Echo).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    port.stop_listening();
    // A regular file is not removed.
    std::fs::write(&path, b"data").unwrap();
    let e = reactor.listen_unix(&path, |_: &Address| Echo).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    std::fs::remove_dir_all(&d).unwrap();
}

struct Failed(Rc<RefCell<Option<String>>>);
impl Factory for Failed {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Echo))
    }
}
impl ClientFactory for Failed {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        *self.0.borrow_mut() = Some(reason.to_string());
    }
}

#[test]
fn connecting_to_a_missing_path_fails_through_the_factory() {
    let reactor = Reactor::new().unwrap();
    let why = Rc::new(RefCell::new(None));
    let c = reactor.connect_unix("/nonexistent/braid.sock", Failed(why.clone()), None);
    run_until(&reactor, LIMIT, || why.borrow().is_some()).unwrap();
    assert!(
        why.borrow().as_ref().unwrap().contains("No such file"),
        "{:?}",
        why.borrow()
    );
    assert_eq!(
        c.destination(),
        Address::Unix(Some("/nonexistent/braid.sock".into()))
    );
}

/// Sends each word's socket to the client, each with its own marker
/// byte, keeping the other ends to check that every copy was closed.
#[test]
fn file_descriptors_travel_with_their_bytes() {
    let d = dir("fds");
    let path = d.join("fds.sock");
    let reactor = Reactor::new().unwrap();
    let kept = Rc::new(RefCell::new(Vec::new()));
    let k = kept.clone();
    let _port = reactor
        .listen_unix(&path, move |_: &Address| Passer(k.clone()))
        .unwrap();
    let log = Rc::new(RefCell::new(Log::default()));
    let l = log.clone();
    reactor.connect_unix(
        &path,
        move |_: &Address| Client {
            log: l.clone(),
            send: b"",
        },
        None,
    );
    run_until(&reactor, LIMIT, || log.borrow().lost).unwrap();
    let events = log.borrow().events.join(" ");
    // Each descriptor arrives just before the read that holds the byte it
    // was sent with (Linux may join earlier plain bytes to that read, but
    // never two descriptors' bytes), and the bytes are all there in order.
    assert_eq!(log.borrow().got, b"start;abg");
    let ok = ["fd:alpha data:start;a", "fd:alpha data:a"]
        .iter()
        .any(|head| events == format!("{head} fd:beta data:b fd:gamma data:g"))
        || events == "data:start; fd:alpha data:a fd:beta data:b fd:gamma data:g";
    assert!(ok, "{events}");
    // Every copy of the passed ends is closed (the transport's duplicate
    // once sent, the client's once read): the kept ends see end of file.
    for w in kept.borrow_mut().iter_mut() {
        w.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(
            w.read(&mut b).unwrap(),
            0,
            "a copy of a passed descriptor leaked"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn tcp_transports_refuse_descriptors() {
    let reactor = Reactor::new().unwrap();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    struct Try(Rc<RefCell<Option<io::ErrorKind>>>);
    impl Protocol for Try {
        fn connection_made(&mut self, t: &Transport) {
            let fd = std::fs::File::open("/dev/null").unwrap();
            let e = t.send_file_descriptor(std::os::fd::AsFd::as_fd(&fd));
            *self.0.borrow_mut() = Some(e.unwrap_err().kind());
            t.lose_connection();
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    }
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Try(r.clone())
        })
        .unwrap();
    let _c = std::net::TcpStream::connect(port.local_addr()).unwrap();
    run_until(&reactor, LIMIT, || result.borrow().is_some()).unwrap();
    assert_eq!(*result.borrow(), Some(io::ErrorKind::Unsupported));
}
