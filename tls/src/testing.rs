//! A fixed test PKI for TLS tests: a CA, a server certificate for
//! `localhost`, `127.0.0.1` and `::1`, and a client certificate, all valid
//! until 2126. The private keys are public: never trust this CA outside
//! tests. Also the TLS check of the host-loop conformance suite,
//! [`tls_echo_start_tls_and_refusal`], which every host crate runs.
//!
//! ```
//! use braid_tls::testing;
//! let server = testing::server_config();
//! let client = testing::client_config();
//! # let _ = (server, client);
//! ```

use braid::testing::conformance::Harness;

use crate::{ClientConfig, ServerConfig};

/// The test CA's certificate (PEM).
pub const CA_PEM: &str = include_str!("certs/ca.pem");
/// The server certificate (PEM), issued by [`CA_PEM`] for `localhost`,
/// `127.0.0.1` and `::1`.
pub const SERVER_PEM: &str = include_str!("certs/server.pem");
/// The server certificate's private key (PEM, PKCS#8).
pub const SERVER_KEY: &str = include_str!("certs/server.key");
/// A client certificate (PEM) issued by [`CA_PEM`].
pub const CLIENT_PEM: &str = include_str!("certs/client.pem");
/// The client certificate's private key (PEM, PKCS#8).
pub const CLIENT_KEY: &str = include_str!("certs/client.key");

/// A server presenting [`SERVER_PEM`].
pub fn server_config() -> ServerConfig {
    ServerConfig::from_pem(SERVER_PEM.as_bytes(), SERVER_KEY.as_bytes())
        .expect("the test certificate and key")
}

/// A client trusting only [`CA_PEM`].
pub fn client_config() -> ClientConfig {
    ClientConfig::with_root_pem(CA_PEM.as_bytes()).expect("the test CA")
}

/// TLS under a host loop, for its conformance suite: 2 MB each way through a TLS echo
/// with a checksum, a plain connection upgraded with `start_tls`, and a
/// handshake refused for a wrong name, all at once in one reactor.
pub fn tls_echo_start_tls_and_refusal(h: &dyn Harness) {
    use crate::testing as pki;
    use crate::{TlsCloseReasonExt, TlsErrorKind, TlsReactorExt, TlsStart, TlsTransportExt};
    use braid::testing::conformance::Watchdog;
    use braid::{Address, CloseReason, Protocol, Reactor, Transport};
    use std::cell::{Cell, RefCell};
    use std::hash::Hasher;
    use std::rc::Rc;

    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, t: &Transport, data: &[u8]) {
            t.write(data);
        }
    }

    const BULK: usize = 2 * 1024 * 1024;
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let done = Rc::new(Cell::new(0u32));
    let finish = {
        let (done, r) = (done.clone(), reactor.clone());
        move || {
            done.set(done.get() + 1);
            if done.get() == 3 {
                r.stop();
            }
        }
    };
    let finish: Rc<dyn Fn()> = Rc::new(finish);

    // 1. Bulk through a TLS echo server.
    let port = reactor
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            |_: &Address| Echo,
            &pki::server_config(),
        )
        .unwrap();
    struct Bulk {
        sent: std::hash::DefaultHasher,
        got: std::hash::DefaultHasher,
        n: usize,
        result: Rc<RefCell<Option<bool>>>,
        finish: Rc<dyn Fn()>,
    }
    impl Protocol for Bulk {
        fn connection_made(&mut self, t: &Transport) {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let mut chunk = vec![0u8; 64 * 1024];
            for _ in 0..BULK / chunk.len() {
                for b in chunk.iter_mut() {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    *b = (x >> 56) as u8;
                }
                self.sent.write(&chunk);
                t.write(&chunk);
            }
        }
        fn data_received(&mut self, t: &Transport, d: &[u8]) {
            self.got.write(d);
            self.n += d.len();
            if self.n == BULK {
                *self.result.borrow_mut() = Some(self.got.finish() == self.sent.finish());
                t.lose_connection();
            }
        }
        fn connection_lost(&mut self, _: &CloseReason) {
            (self.finish)();
        }
    }
    let bulk_ok = Rc::new(RefCell::new(None));
    let mut bulk = Some(Bulk {
        sent: Default::default(),
        got: Default::default(),
        n: 0,
        result: bulk_ok.clone(),
        finish: finish.clone(),
    });
    reactor.connect_tls(
        port.local_addr(),
        "localhost",
        move |_: &Address| bulk.take().unwrap(),
        &pki::client_config(),
        None,
    );

    // 2. STARTTLS on a plain connection.
    struct Upgrade {
        client: bool,
        buf: Vec<u8>,
        tls: bool,
        got: Rc<RefCell<Vec<u8>>>,
        finish: Option<Rc<dyn Fn()>>,
    }
    impl Protocol for Upgrade {
        fn connection_made(&mut self, t: &Transport) {
            if self.client {
                t.write(b"STARTTLS\n");
            }
        }
        fn data_received(&mut self, t: &Transport, d: &[u8]) {
            if self.tls {
                if self.client {
                    self.got.borrow_mut().extend_from_slice(d);
                    t.lose_connection();
                } else {
                    t.write(d);
                }
                return;
            }
            self.buf.extend_from_slice(d);
            if !self.client && self.buf == b"STARTTLS\n" {
                t.write(b"GO\n");
                self.tls = true;
                t.start_tls(TlsStart::server(&pki::server_config()).unwrap())
                    .unwrap();
            } else if self.client && self.buf == b"GO\n" {
                self.tls = true;
                let c = TlsStart::client(&pki::client_config(), "localhost").unwrap();
                t.start_tls(c).unwrap();
                t.write(b"secret\n");
            }
        }
        fn connection_lost(&mut self, _: &CloseReason) {
            if let Some(f) = &self.finish {
                f();
            }
        }
    }
    let plain = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Upgrade {
            client: false,
            buf: vec![],
            tls: false,
            got: Rc::default(),
            finish: None,
        })
        .unwrap();
    let upgraded = Rc::new(RefCell::new(Vec::new()));
    let mut up = Some(Upgrade {
        client: true,
        buf: vec![],
        tls: false,
        got: upgraded.clone(),
        finish: Some(finish.clone()),
    });
    reactor.connect_tcp(
        plain.local_addr(),
        move |_: &Address| up.take().unwrap(),
        None,
    );

    // 3. A wrong name.
    struct Refused {
        kind: Rc<Cell<Option<TlsErrorKind>>>,
        finish: Rc<dyn Fn()>,
    }
    impl Protocol for Refused {
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
        fn connection_lost(&mut self, r: &CloseReason) {
            self.kind.set(r.tls_error().map(|e| e.kind()));
            (self.finish)();
        }
    }
    let refused = Rc::new(Cell::new(None));
    let mut bad = Some(Refused {
        kind: refused.clone(),
        finish: finish.clone(),
    });
    reactor.connect_tls(
        port.local_addr(),
        "wrong.example",
        move |_: &Address| bad.take().unwrap(),
        &pki::client_config(),
        None,
    );

    h.run(&reactor);
    dog.check(&format!("{}: TLS", h.name()));
    assert_eq!(done.get(), 3, "{}: all three connections ended", h.name());
    assert_eq!(
        *bulk_ok.borrow(),
        Some(true),
        "{}: TLS bulk checksum",
        h.name()
    );
    assert_eq!(&*upgraded.borrow(), b"secret\n", "{}: start_tls", h.name());
    assert_eq!(
        refused.get(),
        Some(TlsErrorKind::NameMismatch),
        "{}",
        h.name()
    );
}
