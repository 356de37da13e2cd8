//! Two connections joined both ways, with backpressure and half-close.

use std::future::poll_fn;
use std::task::{Context, Poll};

use braid::aio::Stream;

/// Bytes read from one side before they are written to the other.
const CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct Direction {
    buf: Vec<u8>,
    done: bool,
    bytes: u64,
}

impl Direction {
    /// Moves bytes from `from` to `to` until it must wait; ready once
    /// `from` has ended (its end passed on as a half-close of `to`).
    fn poll(&mut self, cx: &mut Context<'_>, from: &Stream, to: &Stream) -> Poll<()> {
        loop {
            if self.done {
                return Poll::Ready(());
            }
            if !self.buf.is_empty() {
                // All or nothing: Pending while `to` is above its high
                // water mark, and then `from` is not read: memory stays
                // bounded whatever the speeds.
                match to.poll_write_all(cx, &[&self.buf]) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(n)) => {
                        self.bytes += n as u64;
                        self.buf.clear();
                    }
                    Poll::Ready(Err(_)) => {
                        from.transport().lose_connection();
                        self.done = true;
                        continue;
                    }
                }
            }
            let buf = &mut self.buf;
            match from.poll_read_with(cx, CHUNK, |a, b| {
                buf.extend_from_slice(a);
                buf.extend_from_slice(b);
            }) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    to.transport().lose_write_connection();
                    self.done = true;
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) => {
                    to.transport().lose_connection();
                    self.done = true;
                }
            }
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
    let (mut ab, mut ba) = (Direction::default(), Direction::default());
    poll_fn(|cx| {
        let x = ab.poll(cx, &a, &b);
        let y = ba.poll(cx, &b, &a);
        if x.is_ready() && y.is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    a.transport().lose_connection();
    b.transport().lose_connection();
    Spliced {
        a_to_b: ab.bytes,
        b_to_a: ba.bytes,
    }
}
