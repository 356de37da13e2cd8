//! The timer queue behind `call_later`.
//!
//! A binary heap of `(deadline, seq, key)` over a slab of entries. `seq`
//! grows with every schedule and reset, so calls with equal deadlines fire in
//! the order they were scheduled. Each entry has exactly one live heap node;
//! others are stale and skipped when popped. Pushing a deadline later (the
//! common "reset the idle timeout on every packet" case) pushes nothing: the
//! live node is moved when it reaches the top. Stale nodes are counted and the
//! heap is rebuilt when they outnumber live ones, so memory stays bounded
//! however often timers are reset or cancelled.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use slab::Slab;

pub(crate) type Callback = Box<dyn FnOnce()>;

struct Entry {
    id: u64,
    deadline: Instant,
    seq: u64,
    /// `seq` of this entry's live heap node.
    node_seq: u64,
    callback: Callback,
}

/// Identifies one scheduled call; stays valid (and stale) after it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    key: usize,
    id: u64,
}

#[derive(Default)]
pub(crate) struct TimerQueue {
    entries: Slab<Entry>,
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    next_seq: u64,
    stale: usize,
}

impl TimerQueue {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The sequence number the next schedule or reset will get. Calls with a
    /// sequence number at or above a value read before a firing pass are left
    /// for the next pass, so a callback that reschedules itself with no delay
    /// cannot keep one dispatch busy forever.
    pub(crate) fn seq_mark(&self) -> u64 {
        self.next_seq
    }

    pub(crate) fn schedule(&mut self, deadline: Instant, callback: Callback) -> TimerKey {
        let seq = self.bump();
        let key = self.entries.insert(Entry {
            id: seq,
            deadline,
            seq,
            node_seq: seq,
            callback,
        });
        self.heap.push(Reverse((deadline, seq, key)));
        TimerKey { key, id: seq }
    }

    fn bump(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn entry(&self, k: TimerKey) -> Option<&Entry> {
        self.entries.get(k.key).filter(|e| e.id == k.id)
    }

    pub(crate) fn deadline(&self, k: TimerKey) -> Option<Instant> {
        self.entry(k).map(|e| e.deadline)
    }

    pub(crate) fn cancel(&mut self, k: TimerKey) -> bool {
        if self.entry(k).is_none() {
            return false;
        }
        drop(self.entries.remove(k.key));
        self.stale += 1;
        self.maybe_compact();
        true
    }

    pub(crate) fn reset(&mut self, k: TimerKey, deadline: Instant) -> bool {
        if self.entry(k).is_none() {
            return false;
        }
        let seq = self.bump();
        let e = &mut self.entries[k.key];
        // The live node's deadline is at most the entry's old deadline.
        let node_deadline = e.deadline;
        e.deadline = deadline;
        e.seq = seq;
        if deadline < node_deadline {
            e.node_seq = seq;
            self.heap.push(Reverse((deadline, seq, k.key)));
            self.stale += 1;
            self.maybe_compact();
        }
        true
    }

    /// Brings the heap's top to a live node in its final place.
    fn settle(&mut self) -> Option<(Instant, u64, usize)> {
        loop {
            let Reverse((d, s, key)) = *self.heap.peek()?;
            match self.entries.get_mut(key) {
                Some(e) if e.node_seq == s => {
                    if (e.deadline, e.seq) == (d, s) {
                        return Some((d, s, key));
                    }
                    // Moved later by `reset`: move the node too.
                    e.node_seq = e.seq;
                    let node = (e.deadline, e.seq, key);
                    self.heap.pop();
                    self.heap.push(Reverse(node));
                }
                _ => {
                    self.heap.pop();
                    self.stale = self.stale.saturating_sub(1);
                }
            }
        }
    }

    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.settle().map(|(d, _, _)| d)
    }

    /// Removes and returns the earliest call if it is due at `now` and was
    /// scheduled before `seq_mark`.
    pub(crate) fn pop_due(&mut self, now: Instant, seq_mark: u64) -> Option<Callback> {
        let (d, s, key) = self.settle()?;
        if d > now || s >= seq_mark {
            return None;
        }
        self.heap.pop();
        Some(self.entries.remove(key).callback)
    }

    /// Drops every pending call (reactor shutdown).
    pub(crate) fn clear(&mut self) -> Vec<Callback> {
        self.heap.clear();
        self.stale = 0;
        self.entries.drain().map(|e| e.callback).collect()
    }

    fn maybe_compact(&mut self) {
        if self.stale > 2 * self.entries.len() + 64 {
            self.heap.clear();
            for (key, e) in self.entries.iter_mut() {
                e.node_seq = e.seq;
                self.heap.push(Reverse((e.deadline, e.seq, key)));
            }
            self.stale = 0;
        }
    }

    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    fn recorder() -> (Rc<RefCell<Vec<u32>>>, impl Fn(u32) -> Callback) {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        (log, move |n| {
            let l = l.clone();
            Box::new(move || l.borrow_mut().push(n)) as Callback
        })
    }

    fn fire_all(q: &mut TimerQueue, now: Instant) {
        let mark = q.seq_mark();
        while let Some(cb) = q.pop_due(now, mark) {
            cb();
        }
    }

    #[test]
    fn equal_deadlines_fire_in_schedule_order() {
        let (log, cb) = recorder();
        let mut q = TimerQueue::default();
        let t = Instant::now();
        for i in 0..1000 {
            q.schedule(t, cb(i));
        }
        fire_all(&mut q, t);
        assert_eq!(*log.borrow(), (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn reset_later_and_earlier_moves_the_call() {
        let (log, cb) = recorder();
        let mut q = TimerQueue::default();
        let t = Instant::now();
        let s = Duration::from_secs(1);
        let a = q.schedule(t + s, cb(1));
        let b = q.schedule(t + 2 * s, cb(2));
        assert!(q.reset(a, t + 3 * s));
        assert_eq!(q.next_deadline(), Some(t + 2 * s));
        assert!(q.reset(b, t + 4 * s));
        assert!(q.reset(b, t));
        fire_all(&mut q, t + 3 * s);
        assert_eq!(*log.borrow(), vec![2, 1]);
        assert!(!q.reset(a, t), "a call that ran cannot be reset");
        assert!(!q.cancel(b), "a call that ran cannot be cancelled");
    }

    #[test]
    fn handles_do_not_reach_a_reused_slot() {
        let (log, cb) = recorder();
        let mut q = TimerQueue::default();
        let t = Instant::now();
        let a = q.schedule(t, cb(1));
        assert!(q.cancel(a));
        let _b = q.schedule(t, cb(2)); // reuses a's slab slot
        assert!(!q.cancel(a));
        assert_eq!(q.deadline(a), None);
        fire_all(&mut q, t);
        assert_eq!(*log.borrow(), vec![2]);
    }

    #[test]
    fn resetting_one_timer_forever_keeps_the_heap_small() {
        let (_log, cb) = recorder();
        let mut q = TimerQueue::default();
        let t = Instant::now();
        let k = q.schedule(t + Duration::from_secs(60), cb(0));
        for i in 0..100_000u64 {
            // Alternate later and earlier resets to create stale nodes.
            let d = if i % 2 == 0 { 61 + i } else { 1 + i % 50 };
            q.reset(k, t + Duration::from_secs(d));
        }
        assert!(q.heap_len() < 200, "heap grew to {}", q.heap_len());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn calls_scheduled_during_a_pass_wait_for_the_next() {
        let mut q = TimerQueue::default();
        let t = Instant::now();
        q.schedule(t, Box::new(|| {}));
        let mark = q.seq_mark();
        q.schedule(t, Box::new(|| {}));
        assert!(q.pop_due(t, mark).is_some());
        assert!(q.pop_due(t, mark).is_none());
        assert!(q.pop_due(t, q.seq_mark()).is_some());
    }
}
