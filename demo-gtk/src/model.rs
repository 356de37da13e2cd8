//! What the chat shows, independent of GTK: lines, buffers, the connection
//! status, and the [`View`] trait the session talks to. The GTK window is
//! one `View`; the tests use a recording one.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The name of the buffer that holds server messages and errors (not a
/// valid nick or channel, so it never collides with one).
pub const SERVER_BUFFER: &str = "*";

/// What kind of line this is; decides how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `<nick> text`
    Message,
    /// `* nick text` (`/me`)
    Action,
    /// `-nick- text`
    Notice,
    /// Joins, parts, topic changes, connection news.
    Info,
    /// Something went wrong (shown in red).
    Error,
}

impl LineKind {
    /// The name stored in the history database.
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Message => "message",
            LineKind::Action => "action",
            LineKind::Notice => "notice",
            LineKind::Info => "info",
            LineKind::Error => "error",
        }
    }

    /// The kind a history row names (unknown names read as `Info`).
    pub fn parse(s: &str) -> LineKind {
        match s {
            "message" => LineKind::Message,
            "action" => LineKind::Action,
            "notice" => LineKind::Notice,
            "error" => LineKind::Error,
            _ => LineKind::Info,
        }
    }
}

/// One line of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// How to draw it.
    pub kind: LineKind,
    /// Who said it (empty for info and error lines).
    pub nick: String,
    /// The text.
    pub text: String,
}

impl Line {
    /// A line stamped now.
    pub fn now(kind: LineKind, nick: &str, text: &str) -> Line {
        Line {
            at_ms: now_ms(),
            kind,
            nick: nick.to_owned(),
            text: text.to_owned(),
        }
    }

    /// The line as plain text, without the time: `<bob> hi`, `* bob waves`.
    pub fn plain(&self) -> String {
        match self.kind {
            LineKind::Message => format!("<{}> {}", self.nick, self.text),
            LineKind::Action => format!("* {} {}", self.nick, self.text),
            LineKind::Notice if !self.nick.is_empty() => format!("-{}- {}", self.nick, self.text),
            LineKind::Notice | LineKind::Info => format!("-- {}", self.text),
            LineKind::Error => format!("!! {}", self.text),
        }
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a buffer talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferKind {
    /// The server's own messages.
    Server,
    /// A channel: it has a topic and members.
    Channel,
    /// A private conversation with one nick.
    Query,
}

/// The connection's state, as the status line shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Not connected, not trying.
    Idle,
    /// A connection attempt is under way.
    Connecting {
        /// Where to.
        to: String,
    },
    /// Connected and registered.
    Connected {
        /// Where to.
        to: String,
        /// Our nick.
        nick: String,
    },
    /// The connection failed or was lost; the next attempt is scheduled.
    Reconnecting {
        /// Why the last one ended.
        reason: String,
        /// When the next attempt starts.
        delay: Duration,
        /// Attempts so far since the last success.
        retries: u32,
    },
    /// Given up: no further attempt.
    Failed {
        /// Why.
        reason: String,
    },
    /// Disconnected on purpose.
    Disconnected {
        /// Why (for example "you quit").
        reason: String,
    },
}

impl Status {
    /// Whether the session is trying to be connected (connecting,
    /// connected or reconnecting).
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Status::Connecting { .. } | Status::Connected { .. } | Status::Reconnecting { .. }
        )
    }

    /// A short word for the state, used as a CSS class and by the tests.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Connecting { .. } => "connecting",
            Status::Connected { .. } => "connected",
            Status::Reconnecting { .. } => "reconnecting",
            Status::Failed { .. } => "failed",
            Status::Disconnected { .. } => "disconnected",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Idle => write!(f, "not connected"),
            Status::Connecting { to } => write!(f, "connecting to {to}…"),
            Status::Connected { to, nick } => write!(f, "connected to {to} as {nick}"),
            Status::Reconnecting {
                reason,
                delay,
                retries,
            } => write!(
                f,
                "reconnecting in {:.1} s (attempt {}; {reason})",
                delay.as_secs_f64(),
                retries + 1
            ),
            Status::Failed { reason } => write!(f, "failed: {reason}"),
            Status::Disconnected { reason } => write!(f, "disconnected ({reason})"),
        }
    }
}

/// What the session asks of the window. Buffer names are channels
/// (`#braid`), nicks (private conversations) or [`SERVER_BUFFER`]; the
/// view compares them case-insensitively, as IRC does.
pub trait View {
    /// Shows the connection state.
    fn set_status(&self, status: &Status);
    /// Shows our nick.
    fn set_nick(&self, nick: &str);
    /// Opens a buffer if it is not open; `focus` brings it to the front.
    fn open_buffer(&self, name: &str, kind: BufferKind, focus: bool);
    /// Closes a buffer (after `/part` or `/close`).
    fn close_buffer(&self, name: &str);
    /// Whether a buffer is open.
    fn has_buffer(&self, name: &str) -> bool;
    /// Appends a line to a buffer (opening a query buffer if needed is the
    /// session's job, not the view's).
    fn append(&self, buffer: &str, line: &Line);
    /// Puts remembered lines above everything in a buffer.
    fn show_history(&self, buffer: &str, lines: &[Line]);
    /// Shows a channel's topic.
    fn set_topic(&self, buffer: &str, topic: Option<&str>);
    /// Shows a channel's members.
    fn set_members(&self, buffer: &str, members: &[String]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_stored_names() {
        for k in [
            LineKind::Message,
            LineKind::Action,
            LineKind::Notice,
            LineKind::Info,
            LineKind::Error,
        ] {
            assert_eq!(LineKind::parse(k.as_str()), k);
        }
        assert_eq!(LineKind::parse("something new"), LineKind::Info);
    }

    #[test]
    fn lines_read_as_an_irc_client_shows_them() {
        let l = |kind, nick: &str, text: &str| Line::now(kind, nick, text).plain();
        assert_eq!(l(LineKind::Message, "bob", "hi"), "<bob> hi");
        assert_eq!(l(LineKind::Action, "bob", "waves"), "* bob waves");
        assert_eq!(l(LineKind::Notice, "srv", "hello"), "-srv- hello");
        assert_eq!(l(LineKind::Info, "", "bob joined"), "-- bob joined");
        assert_eq!(l(LineKind::Error, "", "no such nick"), "!! no such nick");
    }

    #[test]
    fn the_status_line_says_what_happens_next() {
        let s = Status::Reconnecting {
            reason: "connection refused".into(),
            delay: Duration::from_millis(2718),
            retries: 1,
        };
        assert_eq!(
            s.to_string(),
            "reconnecting in 2.7 s (attempt 2; connection refused)"
        );
        assert!(s.is_active());
        assert!(!Status::Failed { reason: "x".into() }.is_active());
    }
}
