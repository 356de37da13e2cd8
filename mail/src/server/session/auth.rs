//! AUTH PLAIN and LOGIN (RFC 4954, RFC 4616): the session's side; the
//! credentials go to the application as [`Event::Auth`].

use base64::Engine as _;

use super::{Event, Pending, Session, State};
use crate::reply::Reply;

impl Session {
    pub(super) fn auth(&mut self, mechanism: u64, initial: String) {
        if !self.auth_offered() {
            return self.error(if self.config.auth {
                Reply::new(
                    538,
                    [5, 7, 11],
                    "Encryption required for requested authentication mechanism",
                )
            } else {
                Reply::bad_sequence("authentication not enabled")
            });
        }
        if self.info.authenticated.is_some() {
            return self.error(Reply::bad_sequence("already authenticated"));
        }
        if self.envelope.is_some() {
            return self.error(Reply::bad_sequence("MAIL transaction in progress"));
        }
        match mechanism {
            smtp_proto::AUTH_PLAIN if initial.is_empty() => {
                self.state = State::AuthPlain;
                self.reply(Reply::plain(334, ""));
            }
            smtp_proto::AUTH_PLAIN => self.auth_plain(initial.as_bytes()),
            smtp_proto::AUTH_LOGIN if initial.is_empty() => {
                self.state = State::AuthLogin(None);
                self.reply(Reply::plain(334, "VXNlcm5hbWU6"));
            }
            smtp_proto::AUTH_LOGIN => match decode64(initial.as_bytes()) {
                Some(user) => {
                    self.state = State::AuthLogin(Some(String::from_utf8_lossy(&user).into()));
                    self.reply(Reply::plain(334, "UGFzc3dvcmQ6"));
                }
                None => self.error(Reply::new(501, [5, 5, 2], "Error: malformed base64")),
            },
            _ => self.error(Reply::new(
                504,
                [5, 5, 4],
                "Error: unsupported authentication mechanism",
            )),
        }
    }

    pub(super) fn auth_line(&mut self, line: &[u8]) {
        let line = trim_crlf(line);
        let state = std::mem::replace(&mut self.state, State::Command);
        if line == b"*" {
            return self.error(Reply::new(501, [5, 7, 0], "Authentication aborted"));
        }
        match state {
            State::AuthPlain => self.auth_plain(line),
            State::AuthLogin(None) => match decode64(line) {
                Some(user) => {
                    self.state = State::AuthLogin(Some(String::from_utf8_lossy(&user).into()));
                    self.reply(Reply::plain(334, "UGFzc3dvcmQ6"));
                }
                None => self.error(Reply::new(501, [5, 5, 2], "Error: malformed base64")),
            },
            State::AuthLogin(Some(user)) => match decode64(line) {
                Some(pw) => self.ask_auth(user, String::from_utf8_lossy(&pw).into()),
                None => self.error(Reply::new(501, [5, 5, 2], "Error: malformed base64")),
            },
            _ => {}
        }
    }

    pub(super) fn auth_plain(&mut self, b64: &[u8]) {
        let Some(raw) = decode64(b64) else {
            return self.error(Reply::new(501, [5, 5, 2], "Error: malformed base64"));
        };
        let mut parts = raw.split(|&b| b == 0);
        let (Some(authz), Some(user), Some(pw), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.error(Reply::new(
                501,
                [5, 5, 2],
                "Error: malformed PLAIN response",
            ));
        };
        if !authz.is_empty() && authz != user {
            return self.error(Reply::auth_failed());
        }
        self.ask_auth(
            String::from_utf8_lossy(user).into(),
            String::from_utf8_lossy(pw).into(),
        );
    }

    pub(super) fn ask_auth(&mut self, username: String, password: String) {
        self.pending = Some(Pending::Auth);
        self.events.push_back(Event::Auth { username, password });
    }
}

pub(super) fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn decode64(b: &[u8]) -> Option<Vec<u8>> {
    let b = trim_crlf(b);
    if b == b"=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD.decode(b).ok()
}
