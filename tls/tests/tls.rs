//! TLS over real loopback sockets and in memory: bulk transfer with
//! checksums, STARTTLS in both directions, clean failures, client
//! certificates, ALPN, close_notify, and the handshake timeout.

use braid_tls::prelude::*;
use std::cell::RefCell;
use std::hash::Hasher;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{connected_pair, run_until, FakeClock};
use braid::{Address, CloseKind, CloseReason, Producer, Protocol, Reactor, Transport};
use braid_tls::testing as pki;
use braid_tls::{ClientConfig, ServerConfig, TlsErrorKind, TlsProtocol, TlsStart};

const LIMIT: Duration = Duration::from_secs(60);

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// What one side saw.
#[derive(Default)]
struct Log {
    made: bool,
    handshaken: bool,
    got: Vec<u8>,
    eof: bool,
    lost: Option<(CloseKind, Option<TlsErrorKind>, String)>,
    alpn: Option<Vec<u8>>,
    peer_certs: usize,
    version: Option<String>,
}

type Shared = Rc<RefCell<Log>>;

fn log() -> Shared {
    Rc::new(RefCell::new(Log::default()))
}

/// Records everything; writes `greet` on connection_made; optionally
/// closes after the first data.
struct Rec {
    log: Shared,
    greet: Vec<u8>,
    close_on_data: bool,
}

impl Rec {
    fn new(log: &Shared, greet: &[u8]) -> Rec {
        Rec {
            log: log.clone(),
            greet: greet.to_vec(),
            close_on_data: false,
        }
    }
}

impl Protocol for Rec {
    fn connection_made(&mut self, t: &Transport) {
        self.log.borrow_mut().made = true;
        if !self.greet.is_empty() {
            t.write(&self.greet);
        }
    }
    fn handshake_completed(&mut self, t: &Transport) {
        let info = t.tls_info().expect("a TLS transport");
        let mut l = self.log.borrow_mut();
        l.handshaken = true;
        l.alpn = info.alpn_protocol;
        l.peer_certs = info.peer_certificates.len();
        l.version = info.protocol_version.map(|v| format!("{v:?}"));
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        self.log.borrow_mut().got.extend_from_slice(d);
        if self.close_on_data {
            t.lose_connection();
        }
    }
    fn read_eof(&mut self, t: &Transport) {
        self.log.borrow_mut().eof = true;
        t.lose_connection();
    }
    fn connection_lost(&mut self, reason: &CloseReason) {
        self.log.borrow_mut().lost = Some((
            reason.kind(),
            reason.tls_error().map(|e| e.kind()),
            reason.to_string(),
        ));
    }
}

fn lost(l: &Shared) -> bool {
    l.borrow().lost.is_some()
}

fn tls_kind(l: &Shared) -> Option<TlsErrorKind> {
    l.borrow().lost.as_ref().and_then(|x| x.1)
}

/// Sends `total` pseudo-random bytes as a pull producer, hashing them;
/// hashes what it receives.
struct Bulk {
    total: usize,
    sent: RefCell<usize>,
    seed: RefCell<u64>,
    sent_hash: RefCell<std::hash::DefaultHasher>,
    t: RefCell<Option<Transport>>,
}

impl Producer for Bulk {
    fn pause_producing(&self) {}
    fn resume_producing(&self) {
        let Some(t) = self.t.borrow().clone() else {
            return;
        };
        let left = self.total - *self.sent.borrow();
        if left == 0 {
            return;
        }
        let n = left.min(256 * 1024);
        let mut chunk = vec![0u8; n];
        let mut x = *self.seed.borrow();
        for w in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
        }
        *self.seed.borrow_mut() = x;
        self.sent_hash.borrow_mut().write(&chunk);
        *self.sent.borrow_mut() += n;
        t.write(&chunk);
        if *self.sent.borrow() == self.total {
            t.unregister_producer();
        }
    }
    fn stop_producing(&self) {}
}

#[derive(Default)]
struct BulkLog {
    received: usize,
    hash: std::hash::DefaultHasher,
    lost: Option<String>,
}

struct BulkPeer {
    bulk: Rc<Bulk>,
    log: Rc<RefCell<BulkLog>>,
    /// Pause reading after every chunk and resume from the reactor, to
    /// exercise the layer's held plain text.
    stutter: bool,
}

impl BulkPeer {
    fn new(total: usize, seed: u64, stutter: bool) -> (BulkPeer, Rc<RefCell<BulkLog>>, Rc<Bulk>) {
        let log = Rc::new(RefCell::new(BulkLog::default()));
        let bulk = Rc::new(Bulk {
            total,
            sent: RefCell::new(0),
            seed: RefCell::new(seed | 1),
            sent_hash: RefCell::new(Default::default()),
            t: RefCell::new(None),
        });
        (
            BulkPeer {
                bulk: bulk.clone(),
                log: log.clone(),
                stutter,
            },
            log,
            bulk,
        )
    }
}

impl Protocol for BulkPeer {
    fn connection_made(&mut self, t: &Transport) {
        *self.bulk.t.borrow_mut() = Some(t.clone());
        t.register_producer(self.bulk.clone(), false).unwrap();
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        let mut l = self.log.borrow_mut();
        l.received += d.len();
        l.hash.write(d);
        if self.stutter {
            t.pause_reading();
            let t = t.clone();
            t.reactor().unwrap().call_soon({
                let t = t.clone();
                move || t.resume_reading()
            });
        }
    }
    fn connection_lost(&mut self, reason: &CloseReason) {
        self.log.borrow_mut().lost = Some(reason.to_string());
        *self.bulk.t.borrow_mut() = None;
    }
}

fn exchange(total: usize, stutter: bool) {
    let reactor = Reactor::new().unwrap();
    let (server, slog, sbulk) = BulkPeer::new(total, 0x5eed, stutter);
    let server = RefCell::new(Some(server));
    let port = reactor
        .listen_tls(
            localhost(),
            move |_: &Address| server.borrow_mut().take().expect("one connection"),
            &pki::server_config(),
        )
        .unwrap();
    let (client, clog, cbulk) = BulkPeer::new(total, 0xc11e, false);
    let client = RefCell::new(Some(client));
    reactor.connect_tls(
        port.local_addr(),
        "localhost",
        move |_: &Address| client.borrow_mut().take().expect("one connection"),
        &pki::client_config(),
        None,
    );
    run_until(&reactor, LIMIT, || {
        (slog.borrow().received == total && clog.borrow().received == total)
            || slog.borrow().lost.is_some()
            || clog.borrow().lost.is_some()
    })
    .unwrap();
    let (s, c) = (slog.borrow(), clog.borrow());
    assert_eq!(s.lost, None, "server");
    assert_eq!(c.lost, None, "client");
    assert_eq!(s.received, total);
    assert_eq!(c.received, total);
    assert_eq!(
        s.hash.finish(),
        cbulk.sent_hash.borrow().finish(),
        "client to server"
    );
    assert_eq!(
        c.hash.finish(),
        sbulk.sent_hash.borrow().finish(),
        "server to client"
    );
}

#[test]
fn a_hundred_megabytes_each_way_with_matching_checksums() {
    exchange(100 * 1000 * 1000, false);
}

#[test]
fn a_receiver_that_pauses_after_every_read_loses_nothing() {
    exchange(8 * 1024 * 1024 + 7, true);
}

/// A line protocol that upgrades to TLS on "STARTTLS": the side that sends
/// the command waits for "GO" before starting its half.
struct Starter {
    log: Shared,
    initiator: bool,
    tls_client: bool,
    upgraded: bool,
    plain: Vec<u8>,
}

impl Starter {
    /// Starts TLS; `rest` is what followed the command in the same read:
    /// the peer's first TLS bytes when it is the TLS client.
    fn start(&self, t: &Transport, rest: &[u8]) {
        let pki_client = pki::client_config();
        let pki_server = pki::server_config();
        let start = if self.tls_client {
            TlsStart::client(&pki_client, "localhost")
        } else {
            TlsStart::server(&pki_server)
        };
        t.start_tls(start.unwrap().already_received(rest)).unwrap();
        let again = TlsStart::server(&pki_server).unwrap();
        assert_eq!(
            t.start_tls(again).unwrap_err().kind(),
            TlsErrorKind::Unsupported,
            "a second start_tls is refused"
        );
    }
}

impl Protocol for Starter {
    fn connection_made(&mut self, t: &Transport) {
        assert!(t.tls_info().is_none());
        if self.initiator {
            t.write(b"hello in plain text\nSTARTTLS\n");
        }
    }
    fn handshake_completed(&mut self, t: &Transport) {
        self.log.borrow_mut().handshaken = true;
        let info = t.tls_info().unwrap();
        assert_eq!(info.is_client, self.tls_client);
        t.write(if self.initiator {
            b"secret from the initiator\n"
        } else {
            b"second secret from the responder\n"
        });
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        if self.upgraded {
            let mut l = self.log.borrow_mut();
            l.got.extend_from_slice(d);
            if self.initiator && l.got.ends_with(b"second secret from the responder\n") {
                drop(l);
                t.lose_connection();
            }
            return;
        }
        self.plain.extend_from_slice(d);
        let line = if self.initiator {
            &b"GO\n"[..]
        } else {
            b"STARTTLS\n"
        };
        let Some(at) = self.plain.windows(line.len()).position(|w| w == line) else {
            return;
        };
        let rest = self.plain.split_off(at + line.len());
        self.upgraded = true;
        if self.initiator {
            self.start(t, &rest);
        } else {
            // The reply goes out in plain text, then TLS; what is written
            // right after start_tls is held until the handshake is done.
            t.write(b"GO\n");
            self.start(t, &rest);
            t.write(b"first secret from the responder\n");
        }
    }
    fn connection_lost(&mut self, reason: &CloseReason) {
        self.log.borrow_mut().lost = Some((
            reason.kind(),
            reason.tls_error().map(|e| e.kind()),
            reason.to_string(),
        ));
    }
}

fn starters(initiator_is_tls_client: bool) -> (Starter, Shared, Starter, Shared) {
    let (a, b) = (log(), log());
    (
        Starter {
            log: a.clone(),
            initiator: true,
            tls_client: initiator_is_tls_client,
            upgraded: false,
            plain: Vec::new(),
        },
        a,
        Starter {
            log: b.clone(),
            initiator: false,
            tls_client: !initiator_is_tls_client,
            upgraded: false,
            plain: Vec::new(),
        },
        b,
    )
}

fn check_starters(init: &Shared, resp: &Shared) {
    let (i, r) = (init.borrow(), resp.borrow());
    assert!(
        i.handshaken && r.handshaken,
        "{:?} {:?} {:?} {:?}",
        i.lost,
        r.lost,
        String::from_utf8_lossy(&i.got),
        String::from_utf8_lossy(&r.got)
    );
    assert_eq!(
        String::from_utf8_lossy(&i.got),
        "first secret from the responder\nsecond secret from the responder\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&r.got),
        "secret from the initiator\n"
    );
    assert_eq!(i.lost.as_ref().unwrap().0, CloseKind::Done, "{:?}", i.lost);
    assert_eq!(r.lost.as_ref().unwrap().0, CloseKind::Done, "{:?}", r.lost);
}

#[test]
fn start_tls_mid_stream_over_tcp_either_side_as_tls_client() {
    for initiator_is_tls_client in [true, false] {
        let reactor = Reactor::new().unwrap();
        let (init, ilog, resp, rlog) = starters(initiator_is_tls_client);
        let resp = RefCell::new(Some(resp));
        let port = reactor
            .listen_tcp(localhost(), move |_: &Address| {
                resp.borrow_mut().take().expect("one connection")
            })
            .unwrap();
        let init = RefCell::new(Some(init));
        reactor.connect_tcp(
            port.local_addr(),
            move |_: &Address| init.borrow_mut().take().expect("one connection"),
            None,
        );
        run_until(&reactor, LIMIT, || lost(&ilog) && lost(&rlog)).unwrap();
        check_starters(&ilog, &rlog);
    }
}

#[test]
fn start_tls_in_memory_byte_at_a_time_and_all_at_once() {
    for capacity in [1, usize::MAX] {
        for initiator_is_tls_client in [true, false] {
            let reactor = Reactor::new().unwrap();
            let (init, ilog, resp, rlog) = starters(initiator_is_tls_client);
            let pair = connected_pair(&reactor, resp, init);
            pair.set_capacity(capacity);
            pair.pump();
            check_starters(&ilog, &rlog);
        }
    }
}

#[test]
fn tls_protocol_over_the_memory_transport_byte_at_a_time() {
    for capacity in [1, 7, usize::MAX] {
        let reactor = Reactor::new().unwrap();
        let (s, c) = (log(), log());
        let server = TlsProtocol::new(
            TlsStart::server(&pki::server_config()),
            Rec::new(&s, b"from the server"),
        );
        let client = TlsProtocol::new(
            TlsStart::client(&pki::client_config(), "localhost"),
            Rec {
                close_on_data: true,
                ..Rec::new(&c, b"from the client")
            },
        );
        let pair = connected_pair(&reactor, server, client);
        pair.set_capacity(capacity);
        pair.pump();
        assert_eq!(s.borrow().got, b"from the client");
        assert_eq!(c.borrow().got, b"from the server");
        assert!(s.borrow().handshaken && c.borrow().handshaken);
        assert_eq!(c.borrow().version.as_deref(), Some("TLSv1_3"));
        assert_eq!(c.borrow().peer_certs, 1);
        // The client closed with close_notify: the server saw a clean EOF.
        assert!(s.borrow().eof);
        assert_eq!(s.borrow().lost.as_ref().unwrap().0, CloseKind::Done);
        assert_eq!(c.borrow().lost.as_ref().unwrap().0, CloseKind::Done);
    }
}

/// Runs a TLS server and client over loopback until both are lost.
fn handshake(
    server: &ServerConfig,
    client: &ClientConfig,
    name: &str,
    client_greets: bool,
) -> (Shared, Shared) {
    let reactor = Reactor::new().unwrap();
    let (s, c) = (log(), log());
    let s2 = s.clone();
    let port = reactor
        .listen_tls(
            localhost(),
            move |_: &Address| Rec {
                close_on_data: true,
                ..Rec::new(&s2, b"")
            },
            server,
        )
        .unwrap();
    let c2 = c.clone();
    let greet: &[u8] = if client_greets { b"hi" } else { b"" };
    reactor.connect_tls(
        port.local_addr(),
        name,
        move |_: &Address| Rec::new(&c2, greet),
        client,
        None,
    );
    run_until(&reactor, LIMIT, || lost(&s) && lost(&c)).unwrap();
    (s, c)
}

#[test]
fn a_wrong_host_name_fails_on_both_sides_with_typed_errors() {
    let (s, c) = handshake(
        &pki::server_config(),
        &pki::client_config(),
        "www.example.org",
        true,
    );
    assert_eq!(
        tls_kind(&c),
        Some(TlsErrorKind::NameMismatch),
        "{:?}",
        c.borrow().lost
    );
    assert_eq!(c.borrow().lost.as_ref().unwrap().0, CloseKind::Tls);
    assert_eq!(
        tls_kind(&s),
        Some(TlsErrorKind::PeerAlert),
        "{:?}",
        s.borrow().lost
    );
    // Nothing written before the failed handshake reached the server.
    assert!(s.borrow().got.is_empty());
    assert!(!c.borrow().handshaken && !s.borrow().handshaken);
    assert!(c.borrow().made, "connection_made, then connection_lost");
}

#[test]
fn an_unknown_issuer_is_refused() {
    // The platform's roots (or webpki-roots) do not include the test CA.
    let (_, c) = handshake(
        &pki::server_config(),
        &ClientConfig::new(),
        "localhost",
        true,
    );
    assert_eq!(
        tls_kind(&c),
        Some(TlsErrorKind::UnknownIssuer),
        "{:?}",
        c.borrow().lost
    );
}

/// A CA and a leaf for localhost whose validity ended in 2001.
fn expired_pki() -> (ServerConfig, ClientConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (
        ServerConfig::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap(),
        ClientConfig::with_root_pem(ca_cert.pem().as_bytes()).unwrap(),
    )
}

#[test]
fn an_expired_certificate_is_refused() {
    let (server, client) = expired_pki();
    let (s, c) = handshake(&server, &client, "localhost", true);
    assert_eq!(
        tls_kind(&c),
        Some(TlsErrorKind::Expired),
        "{:?}",
        c.borrow().lost
    );
    assert_eq!(
        tls_kind(&s),
        Some(TlsErrorKind::PeerAlert),
        "{:?}",
        s.borrow().lost
    );
}

#[test]
fn a_plain_text_client_on_a_tls_port_is_refused() {
    let reactor = Reactor::new().unwrap();
    let s = log();
    let s2 = s.clone();
    let port = reactor
        .listen_tls(
            localhost(),
            move |_: &Address| Rec::new(&s2, b""),
            &pki::server_config(),
        )
        .unwrap();
    let addr = port.local_addr();
    let plain = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut back = Vec::new();
        let _ = c.read_to_end(&mut back);
        back
    });
    run_until(&reactor, LIMIT, || lost(&s)).unwrap();
    assert_eq!(
        tls_kind(&s),
        Some(TlsErrorKind::NotTls),
        "{:?}",
        s.borrow().lost
    );
    assert!(s.borrow().got.is_empty(), "nothing reached the protocol");
    let back = plain.join().unwrap();
    // At most a TLS alert record came back, and the connection closed.
    assert!(back.len() < 64, "{back:?}");
}

#[test]
fn a_tls_client_on_a_plain_text_port_fails_cleanly() {
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tcp(localhost(), |_: &Address| {
            Rec::new(&log(), b"220 plain.example ESMTP ready\r\n")
        })
        .unwrap();
    let c = log();
    let c2 = c.clone();
    reactor.connect_tls(
        port.local_addr(),
        "localhost",
        move |_: &Address| Rec::new(&c2, b"hi"),
        &pki::client_config(),
        None,
    );
    run_until(&reactor, LIMIT, || lost(&c)).unwrap();
    assert_eq!(
        tls_kind(&c),
        Some(TlsErrorKind::NotTls),
        "{:?}",
        c.borrow().lost
    );
    assert!(c.borrow().got.is_empty());
}

#[test]
fn client_certificates_when_the_server_requires_them() {
    let required = pki::server_config()
        .client_auth_pem(pki::CA_PEM.as_bytes(), true)
        .unwrap();
    // Without one: refused.
    let (s, c) = handshake(&required, &pki::client_config(), "localhost", true);
    assert_eq!(
        tls_kind(&s),
        Some(TlsErrorKind::BadCertificate),
        "{:?}",
        s.borrow().lost
    );
    assert!(s.borrow().got.is_empty());
    assert!(c.borrow().lost.as_ref().unwrap().0 != CloseKind::Done);
    // With one: the server sees it.
    let with_cert = pki::client_config()
        .client_certificate_pem(pki::CLIENT_PEM.as_bytes(), pki::CLIENT_KEY.as_bytes())
        .unwrap();
    let (s, c) = handshake(&required, &with_cert, "localhost", true);
    assert_eq!(s.borrow().got, b"hi");
    assert_eq!(s.borrow().peer_certs, 1);
    assert_eq!(c.borrow().lost.as_ref().unwrap().0, CloseKind::Done);
}

#[test]
fn alpn_is_negotiated_and_a_mismatch_refused() {
    let server = pki::server_config().alpn(["h2", "http/1.1"]);
    let (s, c) = handshake(
        &server,
        &pki::client_config().alpn(["http/1.1"]),
        "localhost",
        true,
    );
    assert_eq!(s.borrow().alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(c.borrow().alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (s, _) = handshake(
        &server,
        &pki::client_config().alpn(["imap"]),
        "localhost",
        true,
    );
    assert_eq!(
        tls_kind(&s),
        Some(TlsErrorKind::NoApplicationProtocol),
        "{:?}",
        s.borrow().lost
    );
}

#[test]
fn a_cut_without_close_notify_is_reported_as_truncation() {
    // The server aborts (no close_notify) after the handshake; the client
    // must not take that for a clean end of data.
    struct Cutter;
    impl Protocol for Cutter {
        fn data_received(&mut self, t: &Transport, _: &[u8]) {
            t.write(b"partial answer");
        }
        fn handshake_completed(&mut self, t: &Transport) {
            let t = t.clone();
            t.reactor().unwrap().call_later(Duration::from_millis(20), {
                let t = t.clone();
                move || t.abort_connection()
            });
        }
    }
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tls(localhost(), |_: &Address| Cutter, &pki::server_config())
        .unwrap();
    let c = log();
    let c2 = c.clone();
    reactor.connect_tls(
        port.local_addr(),
        "localhost",
        move |_: &Address| Rec::new(&c2, b"question"),
        &pki::client_config(),
        None,
    );
    run_until(&reactor, LIMIT, || lost(&c)).unwrap();
    assert_eq!(c.borrow().got, b"partial answer");
    let kind = c.borrow().lost.as_ref().unwrap().0;
    // An abort is a RST on Linux when unread data is pending, else a FIN.
    assert!(
        kind == CloseKind::Reset || tls_kind(&c) == Some(TlsErrorKind::Truncated),
        "{:?}",
        c.borrow().lost
    );
    assert!(!c.borrow().eof, "no clean EOF was passed up");
}

#[test]
fn a_silent_peer_times_the_handshake_out_on_the_fake_clock() {
    let clock = FakeClock::new();
    let reactor = Reactor::with_clock(clock.clone()).unwrap();
    let s = log();
    let server = TlsProtocol::new(
        TlsStart::server(&pki::server_config().handshake_timeout(Duration::from_secs(5))),
        Rec::new(&s, b""),
    );
    struct Silent;
    impl Protocol for Silent {
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    }
    let pair = connected_pair(&reactor, server, Silent);
    pair.pump();
    clock.advance(Duration::from_millis(4_900));
    pair.pump();
    assert!(!lost(&s), "not yet");
    clock.advance(Duration::from_millis(200));
    pair.pump();
    assert_eq!(
        tls_kind(&s),
        Some(TlsErrorKind::TimedOut),
        "{:?}",
        s.borrow().lost
    );
}

#[test]
fn configuration_errors_are_typed() {
    let e =
        ServerConfig::from_pem(pki::SERVER_PEM.as_bytes(), pki::CLIENT_KEY.as_bytes()).unwrap_err();
    assert_eq!(e.kind(), TlsErrorKind::Config);
    let e = ServerConfig::from_pem(b"not a certificate", pki::SERVER_KEY.as_bytes()).unwrap_err();
    assert_eq!(e.kind(), TlsErrorKind::Config);
    let e = ClientConfig::with_root_pem_file("/nonexistent/ca.pem").unwrap_err();
    assert_eq!(e.kind(), TlsErrorKind::Config);
    // A bad server name ends the connection with Config, after
    // connection_made, like every other TLS failure.
    let reactor = Reactor::new().unwrap();
    let (s, c) = (log(), log());
    let pair = connected_pair(
        &reactor,
        Rec::new(&s, b""),
        TlsProtocol::new(
            TlsStart::client(&pki::client_config(), "not a host name!"),
            Rec::new(&c, b"x"),
        ),
    );
    pair.pump();
    assert!(c.borrow().made);
    assert_eq!(
        tls_kind(&c),
        Some(TlsErrorKind::Config),
        "{:?}",
        c.borrow().lost
    );
    assert!(s.borrow().got.is_empty());
}

#[test]
fn listen_tls_files_from_disk() {
    let dir = std::env::temp_dir().join(format!("braid-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca) = (dir.join("s.pem"), dir.join("s.key"), dir.join("ca.pem"));
    std::fs::write(&cert, pki::SERVER_PEM).unwrap();
    std::fs::write(&key, pki::SERVER_KEY).unwrap();
    std::fs::write(&ca, pki::CA_PEM).unwrap();
    let server = ServerConfig::from_pem_files(&cert, &key).unwrap();
    let client = ClientConfig::with_root_pem_file(&ca).unwrap();
    let (s, c) = handshake(&server, &client, "127.0.0.1", true);
    assert_eq!(s.borrow().got, b"hi");
    assert!(c.borrow().handshaken);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pausing_before_the_handshake_does_not_stall_it() {
    // The echo idiom: the transport is its own streaming producer, which
    // pauses reading at once (before the handshake) when registered early.
    struct PausedEcho;
    impl Protocol for PausedEcho {
        fn connection_made(&mut self, t: &Transport) {
            t.pause_reading();
            t.register_producer(Rc::new(t.clone()), true).unwrap();
        }
        fn handshake_completed(&mut self, t: &Transport) {
            t.resume_reading();
        }
        fn data_received(&mut self, t: &Transport, d: &[u8]) {
            t.write(d);
        }
    }
    for capacity in [1, usize::MAX] {
        let reactor = Reactor::new().unwrap();
        let c = log();
        let pair = connected_pair(
            &reactor,
            TlsProtocol::new(TlsStart::server(&pki::server_config()), PausedEcho),
            TlsProtocol::new(
                TlsStart::client(&pki::client_config(), "localhost"),
                Rec {
                    close_on_data: true,
                    ..Rec::new(&c, b"echo me")
                },
            ),
        );
        pair.set_capacity(capacity);
        pair.pump();
        assert_eq!(c.borrow().got, b"echo me");
        assert!(c.borrow().handshaken);
    }
}

#[test]
fn a_client_factory_hears_the_tls_failure() {
    use braid::{ClientFactory, Connector, Factory};
    type Heard = Rc<RefCell<Option<(CloseKind, Option<TlsErrorKind>)>>>;
    struct Watch(Heard);
    impl Factory for Watch {
        fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
            Some(Box::new(Rec::new(&log(), b"hi")))
        }
    }
    impl ClientFactory for Watch {
        fn client_connection_lost(&mut self, _: &Connector, reason: &CloseReason) {
            *self.0.borrow_mut() = Some((reason.kind(), reason.tls_error().map(|e| e.kind())));
        }
    }
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tls(
            localhost(),
            |_: &Address| Rec::new(&log(), b""),
            &pki::server_config(),
        )
        .unwrap();
    let heard = Rc::new(RefCell::new(None));
    reactor.connect_tls(
        port.local_addr(),
        "elsewhere.example",
        Watch(heard.clone()),
        &pki::client_config(),
        None,
    );
    run_until(&reactor, LIMIT, || heard.borrow().is_some()).unwrap();
    assert_eq!(
        *heard.borrow(),
        Some((CloseKind::Tls, Some(TlsErrorKind::NameMismatch)))
    );
}
