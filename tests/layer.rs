//! A layer written as an outside user would, through braid's public API
//! only: an XOR "cipher" started in the middle of a connection by a
//! STARTTLS-like command, on real loopback sockets (against a plain std
//! client that does the XOR by hand, so the wire is seen to change) and in
//! memory (both sides braid), byte by byte and all at once.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::{Rc, Weak};
use std::time::Duration;

use braid::framing::{LineContext, LineHandler, LineReceiver};
use braid::layer::{Layer, PassThrough};
use braid::testing::{connected_pair, run_until};
use braid::{
    Address, AlreadyRegistered, CloseReason, Producer, Protocol, Reactor, Transport, TransportImpl,
};

/// XORs every byte both ways with `key`.
struct Xor {
    me: Weak<Xor>,
    key: u8,
    pass: PassThrough,
}

impl Xor {
    fn new(key: u8) -> Rc<Xor> {
        Rc::new_cyclic(|me| Xor {
            me: me.clone(),
            key,
            pass: PassThrough::default(),
        })
    }
    fn apply(&self, data: &[u8]) -> Vec<u8> {
        data.iter().map(|b| b ^ self.key).collect()
    }
}

impl TransportImpl for Xor {
    fn write(&self, data: &[u8]) {
        self.pass.write(&self.apply(data));
    }
    fn lose_connection(&self) {
        self.pass.lose_connection()
    }
    fn abort_connection(&self) {
        self.pass.abort_connection()
    }
    fn lose_write_connection(&self) {
        self.pass.lose_write_connection()
    }
    fn peer_addr(&self) -> Address {
        self.pass.peer_addr()
    }
    fn local_addr(&self) -> Address {
        self.pass.local_addr()
    }
    fn pause_reading(&self) {
        self.pass.pause_reading()
    }
    fn resume_reading(&self) {
        self.pass.resume_reading()
    }
    fn register_producer(&self, p: Rc<dyn Producer>, s: bool) -> Result<(), AlreadyRegistered> {
        self.pass.register_producer(p, s)
    }
    fn unregister_producer(&self) {
        self.pass.unregister_producer()
    }
    fn set_write_watermarks(&self, low: usize, high: usize) {
        self.pass.set_write_watermarks(low, high)
    }
    fn write_buffer_len(&self) -> usize {
        self.pass.write_buffer_len()
    }
    fn is_closed(&self) -> bool {
        self.pass.is_closed()
    }
    fn is_disconnecting(&self) -> bool {
        self.pass.is_disconnecting()
    }
    fn reactor(&self) -> Option<Reactor> {
        self.pass.reactor()
    }
    fn find_layer(&self, id: TypeId) -> Option<Rc<dyn Any>> {
        if id == TypeId::of::<Xor>() {
            return self.me.upgrade().map(|me| me as Rc<dyn Any>);
        }
        self.pass.find_layer(id)
    }
}

impl Layer for Xor {
    fn start(&self, lower: Transport, upper: Transport) {
        self.pass.start(lower, upper)
    }
    fn adopt_protocol(&self, protocol: Box<dyn Protocol>) {
        self.pass.adopt_protocol(protocol)
    }
    fn lower_data_received(&self, data: &[u8]) {
        self.pass.deliver(&self.apply(data));
    }
    fn lower_read_eof(&self) {
        self.pass.deliver_eof();
    }
    fn lower_connection_lost(&self, reason: &CloseReason) {
        self.pass.deliver_lost(reason);
    }
}

const KEY: u8 = 0x5a;

/// The server: `XOR` answers `GO` and starts the layer from inside the
/// callback; every other line comes back upper-cased, `KEY?` with the key
/// of the layer found through the transport.
struct Server {
    log: Rc<RefCell<Vec<String>>>,
}

impl LineHandler for Server {
    fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        self.log.borrow_mut().push(line.clone());
        let t = ctx.transport().clone();
        match line.as_str() {
            "XOR" => {
                ctx.send_line(b"GO"); // plain: written before the layer
                t.start_layer(Xor::new(KEY)).unwrap();
                // A second layer on the same connection is refused.
                let again = t.start_layer(Xor::new(1)).unwrap_err();
                assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
            }
            "KEY?" => {
                let key = t.layer::<Xor>().map(|x| x.key);
                ctx.send_line(format!("{key:?}").as_bytes());
            }
            other => ctx.send_line(other.to_ascii_uppercase().as_bytes()),
        }
    }
}

fn server(log: &Rc<RefCell<Vec<String>>>) -> LineReceiver<Server> {
    LineReceiver::with_delimiter(Server { log: log.clone() }, b"\n", 1024)
}

fn xor(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b ^ KEY).collect()
}

#[test]
fn a_layer_of_ones_own_starts_mid_stream_on_a_real_connection() {
    let reactor = Reactor::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            server(&l)
        })
        .unwrap();
    let addr = port.local_addr();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let read = |s: &mut std::net::TcpStream, n: usize| {
            let mut b = vec![0; n];
            s.read_exact(&mut b).unwrap();
            b
        };
        s.write_all(b"plain\nXOR\n").unwrap();
        assert_eq!(
            read(&mut s, 9),
            b"PLAIN\nGO\n",
            "plain text before the layer"
        );
        // All at once, then one byte at a time: the server sees plain text.
        s.write_all(&xor(b"hello\nKEY?\n")).unwrap();
        for b in xor(b"byte by byte\n") {
            s.write_all(&[b]).unwrap();
            s.flush().unwrap();
        }
        let want = b"HELLO\nSome(90)\nBYTE BY BYTE\n";
        let got = read(&mut s, want.len());
        assert_eq!(xor(&got), want, "the wire carries the layer's bytes");
    });
    run_until(&reactor, Duration::from_secs(20), || client.is_finished()).unwrap();
    client.join().unwrap();
    assert_eq!(
        *log.borrow(),
        ["plain", "XOR", "hello", "KEY?", "byte by byte"]
    );
}

/// The client side: sends `XOR`, starts its own layer when `GO` comes,
/// then sends its lines and keeps the answers.
struct Client {
    got: Rc<RefCell<Vec<String>>>,
    lines: Vec<&'static str>,
}

impl LineHandler for Client {
    fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
        ctx.send_line(b"XOR");
    }
    fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        if line == "GO" {
            let t = ctx.transport().clone();
            t.start_layer(Xor::new(KEY)).unwrap();
            for l in &self.lines {
                t.write(format!("{l}\n").as_bytes());
            }
        } else {
            self.got.borrow_mut().push(line);
        }
    }
}

fn exchange(capacity: Option<usize>) -> (Vec<String>, Vec<String>) {
    let reactor = Reactor::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let got = Rc::new(RefCell::new(Vec::new()));
    let client = LineReceiver::with_delimiter(
        Client {
            got: got.clone(),
            lines: vec!["one", "two", "KEY?", "three"],
        },
        b"\n",
        1024,
    );
    let pair = connected_pair(&reactor, server(&log), client);
    if let Some(c) = capacity {
        pair.set_capacity(c);
    }
    pair.pump();
    let (a, b) = (log.borrow().clone(), got.borrow().clone());
    (a, b)
}

#[test]
fn a_layer_of_ones_own_in_memory_whole_and_byte_by_byte() {
    for capacity in [None, Some(1), Some(3)] {
        let (server_saw, client_got) = exchange(capacity);
        assert_eq!(
            server_saw,
            ["XOR", "one", "two", "KEY?", "three"],
            "capacity {capacity:?}"
        );
        assert_eq!(
            client_got,
            ["ONE", "TWO", "Some(90)", "THREE"],
            "capacity {capacity:?}"
        );
    }
}

#[test]
fn a_layer_from_the_first_byte_and_refusals() {
    // Layered puts the layer under a protocol from connection_made on.
    let reactor = Reactor::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    struct Say(Rc<RefCell<Vec<u8>>>);
    impl Protocol for Say {
        fn connection_made(&mut self, t: &Transport) {
            t.write(b"shout\n");
        }
        fn data_received(&mut self, _: &Transport, d: &[u8]) {
            self.0.borrow_mut().extend_from_slice(d);
        }
    }
    let heard = Rc::new(RefCell::new(Vec::new()));
    let pair = connected_pair(
        &reactor,
        braid::layer::Layered::new(Xor::new(KEY), server(&log)),
        braid::layer::Layered::new(Xor::new(KEY), Say(heard.clone())),
    );
    pair.pump();
    assert_eq!(*log.borrow(), ["shout"]);
    assert_eq!(*heard.borrow(), b"SHOUT\n");
    assert!(
        pair.client().layer::<Xor>().is_none(),
        "Layered is not in place"
    );
    // A closed connection takes no layer.
    pair.server().abort_connection();
    pair.pump();
    let e = pair.server().start_layer(Xor::new(KEY)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
}
