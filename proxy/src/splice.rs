//! Two connections joined both ways, with backpressure and half-close.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use braid::aio::Stream;
use braid::{CloseReason, PauseReading, Protocol, Transport};

/// What both directions share.
#[derive(Default)]
struct Joint {
    bytes: [Cell<u64>; 2],
    /// A side's input ended (EOF), or its connection did.
    ended: [Cell<bool>; 2],
    /// A side's connection is gone.
    lost: [Cell<bool>; 2],
    waker: RefCell<Option<Waker>>,
}

impl Joint {
    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// One side's protocol after the hand-off: what it reads is written to
/// the other side as it comes, from the reactor's read buffer (no buffer
/// of its own); the other side's transport pauses its reading when its
/// write buffer is above the high-water mark.
struct Relay {
    side: usize,
    peer: Transport,
    joint: Rc<Joint>,
}

impl Protocol for Relay {
    fn connection_made(&mut self, t: &Transport) {
        // Backpressure: the peer's buffer full pauses this side's reading.
        let _ = self
            .peer
            .register_producer(Rc::new(PauseReading(t.clone())), true);
    }

    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.peer.write(data);
        let b = &self.joint.bytes[self.side];
        b.set(b.get() + data.len() as u64);
    }

    fn read_eof(&mut self, t: &Transport) {
        // Half-close passed on exactly.
        self.joint.ended[self.side].set(true);
        self.peer.lose_write_connection();
        if self.joint.ended[1 - self.side].get() {
            t.lose_connection();
            self.peer.lose_connection();
        }
    }

    fn connection_lost(&mut self, _: &CloseReason) {
        self.joint.ended[self.side].set(true);
        self.joint.lost[self.side].set(true);
        // What this side sent is flushed, then the other side closes.
        self.peer.lose_connection();
        self.joint.wake();
    }
}

/// Closes both sides if the splice is dropped before it ended (its task
/// aborted), as dropping the streams would have.
struct CloseOnDrop(Transport, Transport, Rc<Joint>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if !(self.2.lost[0].get() && self.2.lost[1].get()) {
            self.0.lose_connection();
            self.1.lose_connection();
        }
    }
}

/// What a splice carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spliced {
    /// Bytes from `a` to `b`.
    pub a_to_b: u64,
    /// Bytes from `b` to `a`.
    pub b_to_a: u64,
}

/// Joins `a` and `b` until both directions have ended: what each sends
/// is written to the other, a side that stops reading stops the other
/// side's reading (its buffers stay bounded), and an end of input
/// (half-close) is passed on as a half-close, so protocols that shut
/// their write side first keep working. Then both are closed.
///
/// ```
/// use braid::aio::{Stream, StreamProtocol};
/// use braid::testing::connected_pair;
/// use std::{cell::RefCell, rc::Rc};
///
/// let reactor = braid::Reactor::new()?;
/// let s: Rc<RefCell<Vec<Stream>>> = Rc::default();
/// let (a, b, c, d) = (s.clone(), s.clone(), s.clone(), s.clone());
/// let one = connected_pair(&reactor, StreamProtocol::new(move |x| a.borrow_mut().push(x)), StreamProtocol::new(move |x| b.borrow_mut().push(x)));
/// let two = connected_pair(&reactor, StreamProtocol::new(move |x| c.borrow_mut().push(x)), StreamProtocol::new(move |x| d.borrow_mut().push(x)));
/// let (two_client, two_server, one_client, one_server) = {
///     let mut v = s.borrow_mut();
///     (v.pop().unwrap(), v.pop().unwrap(), v.pop().unwrap(), v.pop().unwrap())
/// };
/// // one's server side joined to two's client side: one's client now
/// // talks to two's server.
/// drop(reactor.spawn_local(braid_proxy::splice(one_server, two_client)));
/// one.client().write(b"hello");
/// for _ in 0..4 { one.pump(); two.pump(); }
/// # let _ = (one_client, two_server);
/// # std::io::Result::Ok(())
/// ```
pub async fn splice(a: Stream, b: Stream) -> Spliced {
    let joint: Rc<Joint> = Rc::default();
    let (ta, tb) = (a.writer(), b.writer());
    let _guard = CloseOnDrop(ta.clone(), tb.clone(), joint.clone());
    // Both connections go to relays: from here on bytes move in the
    // reactor's callbacks, one copy from one socket's read to the other's
    // write buffer, with no task wake-up per read.
    a.into_protocol(Relay {
        side: 0,
        peer: tb,
        joint: joint.clone(),
    });
    b.into_protocol(Relay {
        side: 1,
        peer: ta,
        joint: joint.clone(),
    });
    poll_fn(|cx| {
        if joint.lost[0].get() && joint.lost[1].get() {
            Poll::Ready(())
        } else {
            *joint.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await;
    Spliced {
        a_to_b: joint.bytes[0].get(),
        b_to_a: joint.bytes[1].get(),
    }
}
