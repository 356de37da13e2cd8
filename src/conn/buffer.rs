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
        self.chunks.push_back(data.to_vec());
    }

    /// Up to [`MAX_IOV`] slices of unsent data, oldest first.
    pub(crate) fn slices(&self) -> Vec<IoSlice<'_>> {
        self.chunks
            .iter()
            .take(MAX_IOV)
            .enumerate()
            .map(|(i, c)| IoSlice::new(if i == 0 { &c[self.head..] } else { c }))
            .collect()
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
                self.chunks.pop_front();
            } else {
                self.head += n;
                n = 0;
            }
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 8 {
            self.chunks = VecDeque::new(); // idle connections keep no memory
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
            for s in b.slices() {
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
        assert_eq!(b.slices().len(), 1);
        assert_eq!(b.len(), 10_000);
    }
}
