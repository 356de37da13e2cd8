//! Bytes between sunset's runner and the channels' transports, the same
//! for a server and a client: data read out of the runner into each
//! channel's inbox (held against its window), queued writes sent as the
//! peer's window allows, EOF, exit and CLOSE in order, what arrived given
//! to each protocol, the runner's output handed to the connection.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use std::rc::Weak;

use braid::{Address, Producer, Transport};
use sunset::{ChanData, ChanHandle, CliServ, Runner};

use crate::channel::{ChanInner, ChannelRequest, ExitReport};

/// Largest piece written to a channel at once (OpenSSH's packet size).
const CHUNK: usize = 32 * 1024;
/// Most bytes given to one channel's protocol per delivery.
const DELIVER: usize = 64 * 1024;

/// A channel as the connection holds it.
pub(crate) struct Slot {
    pub(crate) chan: Rc<ChanInner>,
    pub(crate) handle: Option<ChanHandle>,
    pub(crate) eof_sent: bool,
    pub(crate) close_sent: bool,
}

impl Slot {
    pub(crate) fn new(chan: Rc<ChanInner>, handle: ChanHandle) -> Slot {
        Slot {
            chan,
            handle: Some(handle),
            eof_sent: false,
            close_sent: false,
        }
    }
}

/// A connection's channels by sunset's number.
pub(crate) type Slots = RefCell<BTreeMap<u32, Slot>>;

/// Gives the runner what it takes of `pending`.
pub(crate) fn feed<CS: CliServ>(
    runner: &mut Runner<'static, CS>,
    pending: &RefCell<Vec<u8>>,
) -> Result<usize, sunset::Error> {
    let mut pending = pending.borrow_mut();
    let mut total = 0;
    while !pending.is_empty() {
        match runner.input(&pending) {
            Ok(0) => break,
            Ok(n) => {
                pending.drain(..n);
                total += n;
            }
            Err(e) => {
                pending.clear();
                return Err(e);
            }
        }
    }
    Ok(total)
}

/// The address of the connection's transport (`local` or the peer's).
pub(crate) fn address(t: &RefCell<Option<Transport>>, local: bool) -> Address {
    match t.borrow().as_ref() {
        Some(t) if local => t.local_addr(),
        Some(t) => t.peer_addr(),
        None => Address::Memory("ssh".into()),
    }
}

/// A connection whose TCP write buffer can fill up.
pub(crate) trait Backpressured {
    fn set_tcp_paused(&self, paused: bool);
    fn kick(&self);
}

/// The connection as its TCP transport's producer: a full write buffer
/// pauses the channels' sending, a drained one resumes it.
pub(crate) struct TcpBackpressure<C>(pub(crate) Weak<C>);

impl<C: Backpressured> Producer for TcpBackpressure<C> {
    fn pause_producing(&self) {
        if let Some(c) = self.0.upgrade() {
            c.set_tcp_paused(true);
        }
    }
    fn resume_producing(&self) {
        if let Some(c) = self.0.upgrade() {
            c.set_tcp_paused(false);
            c.kick();
        }
    }
    fn stop_producing(&self) {}
}

/// Writes the runner's output to the transport, counting it in `sent`.
pub(crate) fn drain_output<CS: CliServ>(
    runner: &mut Runner<'static, CS>,
    t: Option<&Transport>,
    sent: &Cell<u64>,
) {
    loop {
        let out = runner.output_buf();
        if out.is_empty() {
            break;
        }
        let n = out.len();
        if let Some(t) = t {
            t.write(out);
        }
        runner.consume_output(n);
        sent.set(sent.get() + n as u64);
    }
}

/// Moves data the runner holds for channels into their inboxes.
pub(crate) fn read_channels<CS: CliServ>(slots: &Slots, runner: &mut Runner<'static, CS>) {
    let mut buf = [0u8; 4096];
    while let Some((num, _dt, _len)) = runner.read_channel_ready() {
        let slots = slots.borrow();
        let Some(slot) = slots.get(&num.0) else {
            tracing::warn!(channel = num.0, "data for a channel not held");
            return;
        };
        let Some(h) = slot.handle.as_ref() else {
            return;
        };
        loop {
            match runner.read_channel_held(h, &mut buf) {
                Ok((0, _)) | Err(_) => break,
                Ok((n, dt)) => {
                    if slot.chan.lost.get() {
                        let _ = runner.release_channel_window(h, n);
                    } else if dt == ChanData::Stderr {
                        slot.chan.errinbox.borrow_mut().extend(&buf[..n]);
                    } else {
                        slot.chan.inbox.borrow_mut().extend(&buf[..n]);
                    }
                }
            }
        }
    }
}

/// Sends what channels queued, their EOFs, exits and CLOSEs; notes
/// what the peer closed.
pub(crate) fn write_channels<CS: CliServ>(
    slots: &Slots,
    runner: &mut Runner<'static, CS>,
    tcp_paused: bool,
    t: Option<&Transport>,
    sent: &Cell<u64>,
) -> Vec<Rc<ChanInner>> {
    let mut gone = Vec::new();
    let mut lost = Vec::new();
    let mut slots = slots.borrow_mut();
    for (num, slot) in slots.iter_mut() {
        let Some(h) = slot.handle.as_ref() else {
            continue;
        };
        let chan = &slot.chan;
        // A client's window changes and signals, in order, before more
        // data (once the channel is open: until then they wait).
        let pending: Vec<_> = chan.requests.borrow_mut().drain(..).collect();
        for (i, r) in pending.iter().enumerate() {
            let sent = match r {
                ChannelRequest::WindowChange(w) => runner.channel_window_change(
                    h,
                    sunset::packets::WinChange {
                        cols: w.cols,
                        rows: w.rows,
                        width: w.width,
                        height: w.height,
                    },
                ),
                ChannelRequest::Signal(name) => runner.channel_signal(h, name),
            };
            if sent.is_err() {
                chan.requests
                    .borrow_mut()
                    .splice(0..0, pending[i..].iter().cloned());
                break;
            }
        }
        if runner.is_channel_eof(h) {
            chan.eof_received.set(true);
        }
        if !tcp_paused {
            for (boxed, dt) in [
                (&chan.outbox, ChanData::Normal),
                (&chan.errbox, ChanData::Stderr),
            ] {
                let mut q = boxed.borrow_mut();
                while !q.is_empty() {
                    let room = match runner.write_channel_ready(h, dt) {
                        Ok(Some(n)) if n > 0 => n,
                        _ => break,
                    };
                    let n = room.min(CHUNK).min(q.len());
                    let (a, _) = q.as_slices();
                    let piece: Vec<u8> = if a.len() >= n {
                        a[..n].to_vec()
                    } else {
                        q.iter().take(n).copied().collect()
                    };
                    match runner.write_channel(h, dt, &piece) {
                        Ok(0) | Err(_) => break,
                        Ok(w) => {
                            q.drain(..w);
                        }
                    }
                    // sunset holds one packet's worth of output: hand
                    // it to the transport to make room for the next.
                    drain_output(runner, t, sent);
                }
            }
            chan.sync_producer();
        }
        let drained = chan.queued() == 0;
        let shut = chan.closing.get() || chan.write_shut.get() || chan.aborted.get();
        if shut
            && (drained || chan.aborted.get())
            && !slot.eof_sent
            && !slot.close_sent
            && runner.channel_eof(h).is_ok()
        {
            slot.eof_sent = true;
        }
        if chan.closing.get() && (drained || chan.aborted.get()) && !slot.close_sent {
            let exit = chan.exit.borrow().clone();
            let mut exit_ok = true;
            if let (Some(exit), false) = (exit, chan.exit_sent.get()) {
                let r = match &exit {
                    ExitReport::Status(s) => runner.channel_exit_status(h, *s),
                    ExitReport::Signal {
                        name,
                        core_dumped,
                        message,
                    } => runner.channel_exit_signal(h, name, *core_dumped, message),
                };
                match r {
                    Ok(()) => chan.exit_sent.set(true),
                    // A key exchange holds it back: try again later.
                    Err(sunset::Error::BusySend { .. }) => exit_ok = false,
                    Err(_) => chan.exit_sent.set(true),
                }
            }
            if exit_ok && runner.channel_close(h).is_ok() {
                slot.close_sent = true;
            }
        }
        if runner.is_channel_closed(h) || runner.is_channel_open_failed(h) {
            gone.push(*num);
        }
    }
    for num in gone {
        if let Some(mut slot) = slots.remove(&num) {
            if let Some(h) = slot.handle.take() {
                let _ = runner.channel_done(h);
            }
            lost.push(slot.chan);
        }
    }
    lost
}

/// Gives channels' protocols what arrived for them; reopens the
/// peer's window for what they took. True if anything was delivered.
pub(crate) fn deliver<CS: CliServ>(
    slots: &Slots,
    runner: &RefCell<Runner<'static, CS>>,
) -> (bool, bool) {
    let chans: Vec<Rc<ChanInner>> = slots.borrow().values().map(|s| s.chan.clone()).collect();
    let mut any = false;
    let mut more = false;
    for chan in chans {
        if !chan.started.get() || chan.lost.get() {
            continue;
        }
        let mut taken = 0;
        while !chan.reading_paused.get() && taken < 4 * DELIVER {
            let piece: Vec<u8> = {
                let mut inbox = chan.inbox.borrow_mut();
                let n = inbox.len().min(DELIVER);
                inbox.drain(..n).collect()
            };
            if piece.is_empty() {
                break;
            }
            taken += piece.len();
            chan.call(|p, t| p.data_received(t, &piece));
        }
        if taken > 0 {
            any = true;
            let slots = slots.borrow();
            if let Some(h) = slots.get(&chan.num).and_then(|s| s.handle.as_ref()) {
                let _ = runner.borrow_mut().release_channel_window(h, taken);
            }
        }
        if chan.eof_received.get()
            && chan.inbox.borrow().is_empty()
            && !chan.eof_delivered.replace(true)
        {
            any = true;
            chan.call(|p, t| p.read_eof(t));
        }
        // stderr (a client's): to its handler, the window reopened.
        let err: Vec<u8> = chan.errinbox.borrow_mut().drain(..).collect();
        if !err.is_empty() {
            any = true;
            chan.stderr_received(&err);
            let slots = slots.borrow();
            if let Some(h) = slots.get(&chan.num).and_then(|s| s.handle.as_ref()) {
                let _ = runner.borrow_mut().release_channel_window(h, err.len());
            }
        }
        if !chan.inbox.borrow().is_empty() && !chan.reading_paused.get() {
            more = true;
        }
    }
    (any, more)
}
