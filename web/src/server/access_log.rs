//! The access log (Combined Log Format), written when a response's body
//! ends so the byte count is what was sent.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::body::{Body, BodyError};
use crate::rt::Exchanges;
use braid::Address;

pub(super) struct AccessLog {
    pub(super) peer: Address,
    pub(super) start: std::time::SystemTime,
    pub(super) line: String,
    pub(super) referer: Option<String>,
    pub(super) agent: Option<String>,
    pub(super) status: u16,
    pub(super) bytes: u64,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let host = match self.peer.socket_addr() {
            Some(a) => a.ip().to_string(),
            None => "-".to_owned(),
        };
        tracing::info!(
            target: "braid_web::access",
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"",
            host,
            clf_date(self.start),
            self.line.replace('"', "%22"),
            self.status,
            self.bytes,
            self.referer.as_deref().unwrap_or("-").replace('"', "%22"),
            self.agent.as_deref().unwrap_or("-").replace('"', "%22"),
        );
    }
}

/// `26/Nov/2026:07:53:19 +0000`, as the Common Log Format writes dates.
pub(crate) fn clf_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A response body that counts what it sends and writes the access log
/// line when the response is done (or dropped).
pub(crate) struct LoggedBody {
    pub(super) body: Body,
    pub(super) log: Option<AccessLog>,
    /// The connection's count of finished responses, bumped on drop.
    pub(super) done: Option<Rc<Exchanges>>,
}

impl LoggedBody {
    pub(super) fn plain(body: Body) -> LoggedBody {
        LoggedBody {
            body,
            log: None,
            done: None,
        }
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(e) = &self.done {
            e.finished.set(e.finished.get() + 1);
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let r = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r {
            if let (Some(d), Some(l)) = (f.data_ref(), self.log.as_mut()) {
                l.bytes += d.len() as u64;
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
