//! The SOCKS server and the port forward driven over the in-memory
//! transport on both sides (the client's connection and the outbound one,
//! through an `outbound::Connect` of pairs): no sockets, the fake clock,
//! the client's bytes fed whole and byte by byte.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use braid::aio::{Stream, StreamProtocol};
use braid::testing::{connected_pair, MemoryReactor, Pair};
use braid::{Address, Deferred, Factory, Failure, Protocol, Reactor, Transport};
use braid_proxy::outbound::{Connect, Connecting};
use braid_proxy::{PortForward, SocksServer};

/// Every in-memory connection of a test, to pump together.
#[derive(Clone, Default)]
struct Net(Rc<RefCell<Vec<Rc<Pair>>>>);

impl Net {
    /// Moves bytes and runs what became ready until nothing moves.
    fn settle(&self, mr: &MemoryReactor) {
        for _ in 0..200 {
            // A pump may connect out (a new pair): pump a copy of the list.
            let pairs: Vec<Rc<Pair>> = self.0.borrow().clone();
            let moved: usize = pairs.iter().map(|p| p.pump()).sum();
            let ran = mr.reactor().iterate(Duration::ZERO).unwrap();
            if moved == 0 && ran.io_events == 0 && ran.calls == 0 {
                return;
            }
        }
        panic!("the network never settled");
    }
}

/// What the far end saw: its bytes and whether its input ended.
#[derive(Default)]
struct Seen {
    data: RefCell<Vec<u8>>,
    eof: Cell<bool>,
    lost: Cell<bool>,
}

/// The far end: echoes, and answers a half-close with one.
struct Echo(Rc<Seen>);
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.0.data.borrow_mut().extend_from_slice(data);
        t.write(data);
    }
    fn read_eof(&mut self, t: &Transport) {
        self.0.eof.set(true);
        t.lose_write_connection();
    }
    fn connection_lost(&mut self, _: &braid::CloseReason) {
        self.0.lost.set(true);
    }
}

/// The client: keeps what it gets.
struct Client(Rc<Seen>);
impl Protocol for Client {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.data.borrow_mut().extend_from_slice(data);
    }
    fn read_eof(&mut self, _: &Transport) {
        self.0.eof.set(true);
    }
    fn connection_lost(&mut self, _: &braid::CloseReason) {
        self.0.lost.set(true);
    }
}

/// Outbound connections to in-memory echo servers; what was asked for.
struct Memory {
    net: Net,
    far: Rc<Seen>,
    asked: Rc<RefCell<Vec<String>>>,
}

impl Connect for Memory {
    fn connect(&self, reactor: &Reactor, host: &str, port: u16, _: Duration) -> Connecting {
        self.asked.borrow_mut().push(format!("{host}:{port}"));
        let d: Deferred<Stream, Failure> = Deferred::new();
        let done = RefCell::new(Some(d.resolver()));
        let pair = connected_pair(
            reactor,
            Echo(self.far.clone()),
            StreamProtocol::new(move |s| {
                if let Some(r) = done.borrow_mut().take() {
                    r.resolve(Ok(s));
                }
            }),
        );
        self.net.0.borrow_mut().push(Rc::new(pair));
        Box::pin(async move { d.await.map_err(|f| io::Error::other(f.to_string())) })
    }
}

/// Never answers; says when it is given up.
struct Hangs(Rc<Cell<bool>>);
struct Flag(Rc<Cell<bool>>);
impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}
impl Connect for Hangs {
    fn connect(&self, _: &Reactor, _: &str, _: u16, _: Duration) -> Connecting {
        let flag = Flag(self.0.clone());
        Box::pin(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
            unreachable!()
        })
    }
}

fn feed(net: &Net, mr: &MemoryReactor, to: &Transport, bytes: &[u8], chunk: usize) {
    let size = if chunk == 0 {
        bytes.len().max(1)
    } else {
        chunk
    };
    for piece in bytes.chunks(size) {
        to.write(piece);
        net.settle(mr);
    }
}

fn client_of(net: &Net, mr: &MemoryReactor, factory: impl Factory) -> (Transport, Rc<Seen>) {
    let (t, seen, _) = client_and_server(net, mr, factory);
    (t, seen)
}

/// The client's transport, what it saw, and the proxy's end of it.
fn client_and_server(
    net: &Net,
    mr: &MemoryReactor,
    mut factory: impl Factory,
) -> (Transport, Rc<Seen>, Transport) {
    let seen = Rc::new(Seen::default());
    let server = factory
        .build_protocol(&Address::Memory("client".into()))
        .unwrap();
    let pair = connected_pair(mr.reactor(), server, Client(seen.clone()));
    let (t, s) = (pair.client(), pair.server());
    net.0.borrow_mut().push(Rc::new(pair));
    net.settle(mr);
    (t, seen, s)
}

#[test]
fn socks5_by_name_whole_and_byte_by_byte() {
    for chunk in [0, 1] {
        let mr = MemoryReactor::new();
        let net = Net::default();
        let far = Rc::new(Seen::default());
        let asked = Rc::default();
        let socks = SocksServer::new(mr.reactor()).connect_with(Memory {
            net: net.clone(),
            far: far.clone(),
            asked: Rc::clone(&asked),
        });
        let (client, seen) = client_of(&net, &mr, socks.factory());
        let mut hello = vec![5, 1, 0, 5, 1, 0, 3, 11];
        hello.extend_from_slice(b"target.test");
        hello.extend_from_slice(&80u16.to_be_bytes());
        // The first data rides with the request, before the reply.
        hello.extend_from_slice(b"early ");
        feed(&net, &mr, &client, &hello, chunk);
        feed(&net, &mr, &client, b"ping", chunk);
        assert_eq!(*asked.borrow(), ["target.test:80"], "chunk {chunk}");
        let mut want = vec![5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"early ping");
        assert_eq!(*seen.data.borrow(), want, "chunk {chunk}");
        assert_eq!(*far.data.borrow(), b"early ping");
        // Half-close passed on: the far end hears EOF, answers with its
        // own, and both connections end (a side whose write is shut hears
        // the peer's end as the loss, not as EOF).
        client.lose_write_connection();
        net.settle(&mr);
        assert!(far.eof.get(), "chunk {chunk}");
        assert!(
            far.lost.get() && seen.lost.get(),
            "chunk {chunk}: far {} client {}",
            far.lost.get(),
            seen.lost.get()
        );
    }
}

#[test]
fn socks4a_refused_target_gets_its_code() {
    struct Refuses;
    impl Connect for Refuses {
        fn connect(&self, _: &Reactor, _: &str, _: u16, _: Duration) -> Connecting {
            Box::pin(async { Err(io::ErrorKind::ConnectionRefused.into()) })
        }
    }
    for chunk in [0, 1] {
        let mr = MemoryReactor::new();
        let net = Net::default();
        let socks = SocksServer::new(mr.reactor()).connect_with(Refuses);
        let (client, seen) = client_of(&net, &mr, socks.factory());
        let mut req = vec![4, 1, 0, 80, 0, 0, 0, 1, b'u', 0];
        req.extend_from_slice(b"gone.test\0");
        feed(&net, &mr, &client, &req, chunk);
        assert_eq!(
            seen.data.borrow()[..2],
            [0, 0x5b],
            "chunk {chunk}: request rejected"
        );
        assert!(seen.eof.get(), "and the connection closed");
    }
}

#[test]
fn a_forward_over_memory_and_a_client_that_leaves_first() {
    for chunk in [0, 1] {
        let mr = MemoryReactor::new();
        let net = Net::default();
        let far = Rc::new(Seen::default());
        let pf = PortForward::new(mr.reactor(), "db.internal", 5432).connect_with(Memory {
            net: net.clone(),
            far: far.clone(),
            asked: Rc::default(),
        });
        let (client, seen) = client_of(&net, &mr, pf.factory());
        feed(&net, &mr, &client, b"SELECT 1;", chunk);
        assert_eq!(*seen.data.borrow(), b"SELECT 1;");
        assert_eq!(pf.active(), 1);
        client.lose_connection();
        net.settle(&mr);
        assert!(far.lost.get());
        assert_eq!(pf.active(), 0);
    }

    // twisted#7078: the client goes before the target answers. Its end
    // of input alone is not leaving (a client may half-close after its
    // request and wait for the answer): the attempt goes on. Its
    // connection lost is: the attempt is given up and nothing is left.
    let mr = MemoryReactor::new();
    let net = Net::default();
    let dropped = Rc::new(Cell::new(false));
    let pf =
        PortForward::new(mr.reactor(), "slow.internal", 1).connect_with(Hangs(dropped.clone()));
    let (client, _seen, inbound) = client_and_server(&net, &mr, pf.factory());
    feed(&net, &mr, &client, b"hello?", 0);
    client.lose_write_connection();
    net.settle(&mr);
    assert!(
        !dropped.get(),
        "a half-closed client still waits for its answer"
    );
    // (a reset, as the network would report it, on the proxy's side)
    inbound.abort_connection();
    net.settle(&mr);
    assert!(dropped.get(), "the attempt was abandoned");
    assert_eq!(pf.active(), 0);
}
