//! DATA and BDAT: message bytes through smtp-proto's receivers, with
//! the size limit and the bare-newline policy applied as they pass.

use smtp_proto::request::receiver::DataReceiver;

use super::{BareNewlines, DataState, Event, Pending, Rx, Session, State};
use crate::reply::Reply;

impl Session {
    /// A receiver already past a CRLF, so a first line of "." ends an
    /// empty message and a first line of ".." is unstuffed (smtp-proto's
    /// receiver starts outside a line start).
    pub(super) fn primed_receiver() -> DataReceiver {
        let mut rx = DataReceiver::new();
        let mut scratch = Vec::new();
        rx.ingest(&mut b"\r\n".iter(), &mut scratch);
        rx
    }

    pub(super) fn start_data(&mut self, rx: Rx, bdat_last: bool) {
        self.state = State::Data(Box::new(DataState {
            rx,
            pending_cr: false,
            scratch: Vec::new(),
            bdat_last,
        }));
    }

    pub(super) fn begin_message(&mut self) {
        self.storing = true;
        self.msg_size = 0;
        self.refused = None;
    }

    pub(super) fn data_step(&mut self) -> bool {
        let State::Data(d) = &mut self.state else {
            return false;
        };
        let mut it = self.input.iter();
        let before = it.len();
        d.scratch.clear();
        let (done, bdat) = match &mut d.rx {
            Rx::Data(rx) => (
                !self.input.is_empty() && rx.ingest(&mut it, &mut d.scratch),
                false,
            ),
            Rx::Bdat(rx) => (rx.ingest(&mut it, &mut d.scratch), true),
        };
        let used = before - it.len();
        if used == 0 && !done {
            return false;
        }
        self.input.drain(..used);
        let mut chunk = std::mem::take(&mut d.scratch);
        if !bdat {
            if done && chunk.is_empty() && d.pending_cr {
                // The CR of the closing CRLF . CRLF, held back from the
                // previous chunk: smtp-proto's receiver pops it at the LF,
                // but it was no longer in the receiver's buffer.
                d.pending_cr = false;
            }
            let bare = normalise(&mut chunk, &mut d.pending_cr, done);
            if bare && self.refused.is_none() && self.config.bare_newlines == BareNewlines::Reject {
                self.refused = Some(Reply::new(
                    550,
                    [5, 5, 2],
                    "Error: bare <CR> or <LF> received in message data",
                ));
            }
        }
        self.msg_size += chunk.len();
        if self.msg_size > self.config.max_message_size && self.refused.is_none() {
            self.refused = Some(Reply::too_big());
        }
        if self.refused.is_none() {
            if !chunk.is_empty() {
                self.events.push_back(Event::Data(chunk));
            }
        } else if self.storing {
            self.storing = false;
            self.events.push_back(Event::DataAborted);
        }
        if !done {
            return true;
        }
        // The end of this DATA, or of this BDAT chunk.
        let State::Data(d) = std::mem::replace(&mut self.state, State::Command) else {
            unreachable!()
        };
        let last = !bdat || d.bdat_last;
        if let Some(r) = self.refused.take() {
            // Later BDAT chunks of this message find no transaction and
            // are skipped with a 503.
            tracing::info!(peer = %self.info.peer, reply = %r, "message refused");
            self.envelope = None;
            self.error(r);
        } else if last {
            self.pending = Some(Pending::DataEnd);
            self.events.push_back(Event::DataEnd);
        } else {
            self.reply(Reply::new(
                250,
                [2, 0, 0],
                format!("Ok: {} octets received", self.msg_size),
            ));
        }
        true
    }
}

/// Makes every line end CRLF in `chunk`; says whether there was a bare CR
/// or LF. `pending_cr` carries a CR at the end of one chunk to the next.
fn normalise(chunk: &mut Vec<u8>, pending_cr: &mut bool, end: bool) -> bool {
    let needs = *pending_cr
        || chunk.windows(2).any(|w| (w[0] == b'\r') != (w[1] == b'\n'))
        || chunk.first() == Some(&b'\n')
        || chunk.last() == Some(&b'\r');
    if !needs {
        return false;
    }
    let mut out = Vec::with_capacity(chunk.len() + 8);
    let mut bare = false;
    let mut cr = *pending_cr;
    for &b in chunk.iter() {
        match (cr, b) {
            (true, b'\n') => {
                out.extend_from_slice(b"\r\n");
                cr = false;
            }
            (true, _) => {
                bare = true;
                out.extend_from_slice(b"\r\n");
                cr = b == b'\r';
                if !cr {
                    out.push(b);
                }
            }
            (false, b'\r') => cr = true,
            (false, b'\n') => {
                bare = true;
                out.extend_from_slice(b"\r\n");
            }
            (false, _) => out.push(b),
        }
    }
    if cr && end {
        bare = true;
        out.extend_from_slice(b"\r\n");
        cr = false;
    }
    *pending_cr = cr;
    *chunk = out;
    bare
}
