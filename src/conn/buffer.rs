//! A connection's write buffer: a queue of chunks sent with vectored
//! writes. Small writes are packed into the last chunk so that many tiny
//! writes cost one `sendmsg`, not one each.

use std::collections::VecDeque;
use std::io::IoSlice;

/// Writes smaller than this are copied into the tail chunk.
const PACK_BELOW: usize = 4096;
/// A packed chunk grows up to this size.
const PACKED_CHUNK: usize = 64 * 1024;
/// At most this many slices per `sendmsg` (well under `IOV_MAX`).
pub(crate) const MAX_IOV: usize = 64;
/// Sent chunks up to this capacity are kept for reuse, up to this many
/// bytes of capacity per thread: enough for a dispatch's worth of small
/// replies on a thousand connections, without holding much.
const SPARE_MAX: usize = 16 * 1024;
const SPARE_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Spares {
    chunks: Vec<Vec<u8>>,
    bytes: usize,
    /// Emptied chunk queues, so that a connection whose buffer empties
    /// gives its queue back (an idle one holds none) without paying an
    /// allocation and a free per message.
    queues: Vec<VecDeque<Vec<u8>>>,
}

/// Spare queues kept per thread (each a few dozen bytes).
const SPARE_QUEUES: usize = 1024;

fn queue() -> VecDeque<Vec<u8>> {
    SPARE
        .try_with(|s| s.borrow_mut().queues.pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn recycle_queue(q: VecDeque<Vec<u8>>) {
    if q.capacity() == 0 || q.capacity() > 8 {
        return;
    }
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.queues.len() < SPARE_QUEUES {
            s.queues.push(q);
        }
    });
}

thread_local! {
    /// Emptied chunks, reused by the next small write on this thread: a
    /// request/response server otherwise pays one allocation and one free
    /// per message. Shared by the thread's connections, so an idle
    /// connection holds none.
    static SPARE: std::cell::RefCell<Spares> = std::cell::RefCell::new(Spares::default());
}

fn chunk_from(data: &[u8]) -> Vec<u8> {
    let mut v = SPARE
        .try_with(|s| {
            let mut s = s.borrow_mut();
            let v = s.chunks.pop();
            if let Some(v) = &v {
                s.bytes -= v.capacity();
            }
            v
        })
        .ok()
        .flatten()
        .unwrap_or_default();
    v.extend_from_slice(data);
    v
}

fn recycle(mut v: Vec<u8>) {
    if v.capacity() == 0 || v.capacity() > SPARE_MAX {
        return;
    }
    v.clear();
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.bytes + v.capacity() <= SPARE_BYTES {
            s.bytes += v.capacity();
            s.chunks.push(v);
        }
    });
}

#[derive(Debug, Default)]
pub(crate) struct WriteBuffer {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the first chunk already sent.
    head: usize,
    len: usize,
}

impl WriteBuffer {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if data.len() < PACK_BELOW {
            // Never append to a chunk that is partly sent: `head` indexes it.
            let appendable = self.chunks.len() > 1 || self.head == 0;
            if let Some(last) = self.chunks.back_mut() {
                if appendable && last.len() + data.len() <= PACKED_CHUNK {
                    last.extend_from_slice(data);
                    return;
                }
            }
        }
        let chunk = if data.len() < PACK_BELOW {
            chunk_from(data)
        } else {
            data.to_vec()
        };
        if self.chunks.capacity() == 0 {
            self.chunks = queue();
        }
        self.chunks.push_back(chunk);
    }

    /// The unsent part of the first chunk, and whether it is the only one
    /// (the common case, sent without building a slice array).
    pub(crate) fn first(&self) -> Option<(&[u8], bool)> {
        self.chunks
            .front()
            .map(|c| (&c[self.head..], self.chunks.len() == 1))
    }

    /// Fills `out` with up to [`MAX_IOV`] slices of unsent data, oldest
    /// first, and returns how many (no allocation: this runs per send).
    pub(crate) fn slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_IOV]) -> usize {
        let mut n = 0;
        for (i, c) in self.chunks.iter().take(MAX_IOV).enumerate() {
            out[i] = IoSlice::new(if i == 0 { &c[self.head..] } else { c });
            n += 1;
        }
        n
    }

    /// Drops `n` sent bytes from the front.
    pub(crate) fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(first) = self.chunks.front() else {
                break;
            };
            let left = first.len() - self.head;
            if n >= left {
                n -= left;
                self.head = 0;
                if let Some(sent) = self.chunks.pop_front() {
                    recycle(sent);
                }
            } else {
                self.head += n;
                n = 0;
            }
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 0 {
            // Idle connections keep no memory: the queue goes back to the
            // thread's spares.
            recycle_queue(std::mem::take(&mut self.chunks));
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = WriteBuffer::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &mut WriteBuffer, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let mut budget = step;
            let mut sent = 0;
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = b.slices(&mut iov);
            for s in &iov[..n] {
                let take = s.len().min(budget);
                out.extend_from_slice(&s[..take]);
                budget -= take;
                sent += take;
                if budget == 0 {
                    break;
                }
            }
            b.consume(sent);
        }
        out
    }

    #[test]
    fn keeps_order_across_packing_and_partial_sends() {
        let mut b = WriteBuffer::default();
        let mut expect = Vec::new();
        for i in 0..500u32 {
            let piece: Vec<u8> = (0..(i * 37 % 9000) as usize)
                .map(|j| (i as usize + j) as u8)
                .collect();
            b.push(&piece);
            expect.extend_from_slice(&piece);
        }
        assert_eq!(b.len(), expect.len());
        assert_eq!(drain(&mut b, 1013), expect);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn packs_small_writes() {
        let mut b = WriteBuffer::default();
        for _ in 0..1000 {
            b.push(b"0123456789");
        }
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        assert_eq!(b.slices(&mut iov), 1);
        assert_eq!(b.len(), 10_000);
    }
}
