//! A client and a server joined in memory: Twisted's `iosim`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::rc::Rc;

use crate::conn::{Conn, Wire};
use crate::host::Budget;
use crate::protocol::Protocol;
use crate::reactor::{Reactor, Source};
use crate::transport::{Address, Transport};

#[derive(Default)]
struct Pipe {
    data: VecDeque<u8>,
    /// The writer shut down or closed: EOF after the data.
    eof: bool,
    /// The reader closed: further writes fail.
    reader_gone: bool,
}

struct MemoryWire {
    inbound: Rc<RefCell<Pipe>>,
    outbound: Rc<RefCell<Pipe>>,
    /// Most bytes the outbound pipe holds before writes would block.
    capacity: Rc<Cell<usize>>,
    interest: Cell<(bool, bool)>,
    local: Address,
    peer: Address,
}

impl Wire for MemoryWire {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut p = self.inbound.borrow_mut();
        if p.data.is_empty() {
            return if p.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(p.data.len());
        for (dst, src) in buf.iter_mut().zip(p.data.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut p = self.outbound.borrow_mut();
        if p.reader_gone {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let room = self.capacity.get().saturating_sub(p.data.len());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut sent = 0;
        for b in bufs {
            let take = b.len().min(room - sent);
            p.data.extend(&b[..take]);
            sent += take;
            if sent == room {
                break;
            }
        }
        Ok(sent)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.outbound.borrow_mut().eof = true;
        Ok(())
    }

    fn register(&self, reactor: &Reactor, source: Rc<dyn Source>) -> io::Result<usize> {
        Ok(reactor.track(source))
    }

    fn set_interest(
        &self,
        _reactor: &Reactor,
        _key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        self.interest.set((read, write));
        Ok(())
    }

    fn close(&self, reactor: &Reactor, key: usize) {
        self.interest.set((false, false));
        self.outbound.borrow_mut().eof = true;
        let mut inbound = self.inbound.borrow_mut();
        inbound.reader_gone = true;
        inbound.data.clear();
        drop(inbound);
        reactor.untrack(key);
    }

    fn peer_addr(&self) -> Address {
        self.peer.clone()
    }

    fn local_addr(&self) -> Address {
        self.local.clone()
    }
}

/// A client and a server connected in memory, made by [`connected_pair`].
///
/// Nothing moves until [`pump`](Self::pump): the test decides when bytes
/// travel and when time passes, so every interleaving can be tested
/// without sockets or sleeps.
pub struct Pair {
    reactor: Reactor,
    server: Rc<Conn<MemoryWire>>,
    client: Rc<Conn<MemoryWire>>,
    capacity: Rc<Cell<usize>>,
}

/// Joins `server` and `client` by an in-memory connection on `reactor`
/// (usually a [`MemoryReactor`](super::MemoryReactor)'s) and calls both
/// `connection_made`s, server first.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use braid::testing::{connected_pair, MemoryReactor};
/// use braid::{Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, d: &[u8]) { t.write(d) }
/// }
/// #[derive(Default)]
/// struct Client(Vec<u8>);
/// impl Protocol for Client {
///     fn connection_made(&mut self, t: &Transport) { t.write(b"ping") }
///     fn data_received(&mut self, _: &Transport, d: &[u8]) { self.0.extend_from_slice(d) }
/// }
///
/// let mr = MemoryReactor::new();
/// let client = Rc::new(RefCell::new(Client::default()));
/// let pair = connected_pair(mr.reactor(), Echo, client.clone());
/// pair.pump();
/// assert_eq!(client.borrow().0, b"ping");
/// ```
pub fn connected_pair(reactor: &Reactor, server: impl Protocol, client: impl Protocol) -> Pair {
    let c2s = Rc::new(RefCell::new(Pipe::default()));
    let s2c = Rc::new(RefCell::new(Pipe::default()));
    let capacity = Rc::new(Cell::new(usize::MAX));
    let saddr = Address::Memory("server".into());
    let caddr = Address::Memory("client".into());
    let swire = MemoryWire {
        inbound: c2s.clone(),
        outbound: s2c.clone(),
        capacity: capacity.clone(),
        interest: Cell::new((true, false)),
        local: saddr.clone(),
        peer: caddr.clone(),
    };
    let cwire = MemoryWire {
        inbound: s2c,
        outbound: c2s,
        capacity: capacity.clone(),
        interest: Cell::new((true, false)),
        local: caddr,
        peer: saddr,
    };
    let server = Conn::start(reactor, swire, Box::new(server), None)
        .expect("in-memory registration cannot fail");
    let client = Conn::start(reactor, cwire, Box::new(client), None)
        .expect("in-memory registration cannot fail");
    Pair {
        reactor: reactor.clone(),
        server,
        client,
        capacity,
    }
}

impl Pair {
    /// The server's transport.
    pub fn server(&self) -> Transport {
        self.server.transport()
    }

    /// The client's transport.
    pub fn client(&self) -> Transport {
        self.client.transport()
    }

    /// Limits how many unread bytes each direction holds before writes
    /// block (default: unlimited), to test backpressure.
    pub fn set_capacity(&self, bytes: usize) {
        self.capacity.set(bytes.max(1));
    }

    fn step(conn: &Conn<MemoryWire>) -> bool {
        let w = conn.wire();
        let (read, write) = w.interest.get();
        let readable = read && {
            let p = w.inbound.borrow();
            !p.data.is_empty() || p.eof
        };
        let writable = write && !w.outbound.borrow().reader_gone && {
            let cap = w.capacity.get();
            w.outbound.borrow().data.len() < cap
        };
        if readable || writable {
            conn.ready(readable, writable, &Budget::default());
        }
        readable || writable
    }

    /// Moves bytes both ways and runs queued calls until nothing moves.
    /// Returns how many rounds it took.
    pub fn pump(&self) -> usize {
        let mut rounds = 0;
        loop {
            let d = self.reactor.run_due();
            let a = Self::step(&self.server);
            let b = Self::step(&self.client);
            let d2 = self.reactor.run_due();
            if !a && !b && d.calls == 0 && d2.calls == 0 {
                return rounds;
            }
            rounds += 1;
            if rounds > 1_000_000 {
                panic!("pump did not settle: the protocols keep talking");
            }
        }
    }

    /// Moves at most one read and one write per side, then runs queued
    /// calls: for tests that want a particular interleaving.
    pub fn pump_once(&self) -> bool {
        let a = Self::step(&self.server);
        let b = Self::step(&self.client);
        let d = self.reactor.run_due();
        a || b || d.calls > 0
    }

    /// Bytes waiting to be read by the server and by the client.
    pub fn in_flight(&self) -> (usize, usize) {
        (
            self.server.wire().inbound.borrow().data.len(),
            self.client.wire().inbound.borrow().data.len(),
        )
    }
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}
