//! UDP and Unix datagram sockets over real sockets: echo, connected UDP
//! with refusals reported and survived, multicast join and leave, and
//! send errors returned rather than fatal.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use braid::datagram::{DatagramPort, DatagramProtocol};
use braid::testing::run_until;
use braid::{Address, Reactor};

const LIMIT: Duration = Duration::from_secs(20);

fn any_local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Echo;
impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], from: &Address) {
        port.send_to(data, from).unwrap();
    }
}

#[derive(Default)]
struct Log {
    got: Vec<(Vec<u8>, Address)>,
    refused: u32,
    errors: Vec<io::ErrorKind>,
    started: bool,
    stopped: bool,
}

struct Rec(Rc<RefCell<Log>>);
impl DatagramProtocol for Rec {
    fn start_protocol(&mut self, _: &DatagramPort) {
        self.0.borrow_mut().started = true;
    }
    fn datagram_received(&mut self, _: &DatagramPort, data: &[u8], from: &Address) {
        self.0.borrow_mut().got.push((data.to_vec(), from.clone()));
    }
    fn connection_refused(&mut self, _: &DatagramPort) {
        self.0.borrow_mut().refused += 1;
    }
    fn receive_error(&mut self, _: &DatagramPort, e: &io::Error) {
        self.0.borrow_mut().errors.push(e.kind());
    }
    fn stop_protocol(&mut self) {
        self.0.borrow_mut().stopped = true;
    }
}

fn rec() -> (Rec, Rc<RefCell<Log>>) {
    let l = Rc::new(RefCell::new(Log::default()));
    (Rec(l.clone()), l)
}

#[test]
fn udp_echo_of_every_size_from_empty_to_the_largest() {
    let reactor = Reactor::new().unwrap();
    let server = reactor.listen_udp(any_local(), Echo).unwrap();
    let (r, log) = rec();
    let client = reactor.listen_udp(any_local(), r).unwrap();
    assert!(log.borrow().started);
    let sizes = [0usize, 1, 512, 1500, 9000, 65_507];
    for (i, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|b| (b + i) as u8).collect();
        client.send_to(&data, &server.local_addr()).unwrap();
    }
    run_until(&reactor, LIMIT, || log.borrow().got.len() == sizes.len()).unwrap();
    for (i, (data, from)) in log.borrow().got.iter().enumerate() {
        let want: Vec<u8> = (0..sizes[i]).map(|b| (b + i) as u8).collect();
        assert_eq!(data, &want, "datagram {i}");
        assert_eq!(from, &server.local_addr());
    }
    // Too large for UDP: an error to the caller, and the port lives on.
    let e = client
        .send_to(&vec![0u8; 70_000], &server.local_addr())
        .unwrap_err();
    #[cfg(unix)]
    let too_large = libc::EMSGSIZE;
    #[cfg(windows)]
    let too_large = 10040; // WSAEMSGSIZE
    assert_eq!(e.raw_os_error(), Some(too_large), "{e}");
    client.send_to(b"still here", &server.local_addr()).unwrap();
    run_until(&reactor, LIMIT, || {
        log.borrow().got.len() == sizes.len() + 1
    })
    .unwrap();
    client.stop_listening();
    assert!(log.borrow().stopped);
    assert!(!client.is_listening());
    assert_eq!(
        client
            .send_to(b"x", &server.local_addr())
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotConnected
    );
}

#[test]
#[cfg_attr(
    windows,
    ignore = "under Wine 8.0 no refusal arrives (Windows reports a port unreachable as WSAECONNRESET on the next receive, which braid takes as a refusal); not run on real Windows"
)]
fn connected_udp_reports_refusals_and_survives_them() {
    let reactor = Reactor::new().unwrap();
    // A port nobody listens on.
    let dead = UdpSocket::bind(any_local()).unwrap().local_addr().unwrap();
    let (r, log) = rec();
    let port = reactor.listen_udp(any_local(), r).unwrap();
    assert_eq!(
        port.write(b"x").unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    port.connect(&dead.into()).unwrap();
    assert_eq!(port.peer(), Some(Address::Tcp(dead)));
    port.write(b"anyone there?").unwrap();
    run_until(&reactor, LIMIT, || log.borrow().refused > 0).unwrap();
    assert!(port.is_listening(), "a refusal does not close the port");
    // Connected to a live echo, it works on.
    let live = reactor.listen_udp(any_local(), Echo).unwrap();
    port.connect(&live.local_addr()).unwrap();
    port.write(b"hello").unwrap();
    run_until(&reactor, LIMIT, || !log.borrow().got.is_empty()).unwrap();
    assert_eq!(log.borrow().got[0].0, b"hello");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "under Wine 8.0 a socket that left the group still receives it; not run on real Windows"
)]
fn multicast_join_and_leave_on_loopback() {
    let reactor = Reactor::new().unwrap();
    let group = IpAddr::V4(Ipv4Addr::new(239, 255, 77, 13));
    let lo = Some(Ipv4Addr::LOCALHOST);
    let (ra, a) = rec();
    let first = reactor.listen_multicast(0, false, ra).unwrap();
    let port = first.local_addr().socket_addr().unwrap().port();
    let (rb, b) = rec();
    let second = reactor.listen_multicast(port, false, rb).unwrap();
    first.join_multicast(group, lo).unwrap();
    second.join_multicast(group, lo).unwrap();
    let sender = reactor.listen_udp(any_local(), Echo).unwrap();
    sender.set_multicast_interface(Ipv4Addr::LOCALHOST).unwrap();
    sender.set_multicast_ttl(1).unwrap();
    let to = Address::Tcp(SocketAddr::new(group, port));
    sender.send_to(b"to the group", &to).unwrap();
    run_until(&reactor, LIMIT, || {
        !a.borrow().got.is_empty() && !b.borrow().got.is_empty()
    })
    .unwrap();
    second.leave_multicast(group, lo).unwrap();
    sender.send_to(b"after the leave", &to).unwrap();
    run_until(&reactor, LIMIT, || a.borrow().got.len() == 2).unwrap();
    // Loopback delivery to every member happens within the send, so the
    // one that left would have it queued by now.
    for _ in 0..3 {
        reactor.iterate(Duration::ZERO).unwrap();
    }
    assert_eq!(a.borrow().got[1].0, b"after the leave");
    assert_eq!(b.borrow().got.len(), 1, "the member that left got no more");
}

#[test]
#[cfg(unix)]
fn unix_datagrams_named_and_unnamed() {
    let dir = std::env::temp_dir().join(format!("braid-dgram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (spath, cpath) = (dir.join("server.sock"), dir.join("client.sock"));
    // A stale file from an earlier run is replaced.
    std::fs::write(&spath, b"").unwrap();
    let reactor = Reactor::new().unwrap();
    assert_eq!(
        reactor
            .listen_unix_datagram(&spath, Echo)
            .unwrap_err()
            .kind(),
        io::ErrorKind::AlreadyExists,
        "a regular file is not replaced"
    );
    std::fs::remove_file(&spath).unwrap();
    drop(std::os::unix::net::UnixDatagram::bind(&spath).unwrap());
    let server = reactor.listen_unix_datagram(&spath, Echo).unwrap();
    let (r, log) = rec();
    let client = reactor.listen_unix_datagram(&cpath, r).unwrap();
    client
        .send_to(b"over a path", &spath.as_path().into())
        .unwrap();
    run_until(&reactor, LIMIT, || !log.borrow().got.is_empty()).unwrap();
    assert_eq!(
        log.borrow().got[0],
        (b"over a path".to_vec(), Address::Unix(Some(spath.clone())))
    );
    // From an unnamed socket the server sees no address (and cannot answer).
    let (r2, log2) = rec();
    let listener = reactor
        .listen_unix_datagram(dir.join("l.sock"), r2)
        .unwrap();
    let anon = reactor.unix_datagram_client(Echo).unwrap();
    anon.send_to(b"anonymous", &listener.local_addr()).unwrap();
    run_until(&reactor, LIMIT, || !log2.borrow().got.is_empty()).unwrap();
    assert_eq!(log2.borrow().got[0].1, Address::Unix(None));
    server.stop_listening();
    assert!(!spath.exists(), "the socket file is removed on stop");
    std::fs::remove_dir_all(&dir).unwrap();
}
