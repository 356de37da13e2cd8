//! SMTP replies: a code, an enhanced status code (RFC 3463) and text.

use std::fmt;

/// An SMTP reply (RFC 5321 section 4.2): what a server answers, and what
/// a [`Delivery`](crate::server::Delivery) refuses with.
///
/// ```
/// use braid_mail::Reply;
///
/// let r = Reply::new(550, [5, 1, 1], "No such user here");
/// assert_eq!(r.to_string(), "550 5.1.1 No such user here");
/// assert!(r.is_permanent());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: Option<[u8; 3]>,
    text: String,
}

impl Reply {
    /// A reply with an enhanced status code. Line breaks in `text` make a
    /// multi-line reply.
    pub fn new(code: u16, enhanced: [u8; 3], text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            text: text.into(),
        }
    }

    /// A reply without an enhanced status code (a greeting, a `334`
    /// challenge).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            text: text.into(),
        }
    }

    /// The three-digit code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, if there is one.
    pub fn enhanced(&self) -> Option<[u8; 3]> {
        self.enhanced
    }

    /// The text (lines joined with `\n`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not try again.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// Appends the reply in wire form (`250-...` continuation lines, CRLF
    /// ends). Control characters in the text become spaces, so a reply
    /// can never end early or inject a line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = if self.text.is_empty() {
            vec![""]
        } else {
            self.text.split('\n').collect()
        };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let code = self.code.min(999);
            out.extend_from_slice(format!("{code:03}{sep}").as_bytes());
            if let Some([a, b, c]) = self.enhanced {
                out.extend_from_slice(format!("{a}.{b}.{c} ").as_bytes());
            }
            out.extend(line.trim_end_matches('\r').bytes().map(|b| {
                if b.is_ascii_control() {
                    b' '
                } else {
                    b
                }
            }));
            out.extend_from_slice(b"\r\n");
        }
    }

    // The server's own replies, worded as Postfix words them.

    pub(crate) fn ok() -> Reply {
        Reply::new(250, [2, 0, 0], "Ok")
    }
    pub(crate) fn bad_sequence(what: &str) -> Reply {
        Reply::new(503, [5, 5, 1], format!("Error: {what}"))
    }
    pub(crate) fn unrecognized() -> Reply {
        Reply::new(500, [5, 5, 2], "Error: command not recognized")
    }
    pub(crate) fn not_implemented() -> Reply {
        Reply::new(502, [5, 5, 1], "Error: command not implemented")
    }
    pub(crate) fn syntax(what: impl fmt::Display) -> Reply {
        Reply::new(501, [5, 5, 4], format!("Syntax: {what}"))
    }
    pub(crate) fn line_too_long() -> Reply {
        Reply::new(500, [5, 5, 2], "Error: line too long")
    }
    pub(crate) fn too_big() -> Reply {
        Reply::new(552, [5, 3, 4], "Message size exceeds fixed limit")
    }
    pub(crate) fn auth_failed() -> Reply {
        Reply::new(535, [5, 7, 8], "Error: authentication failed")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.code)?;
        if let Some([a, b, c]) = self.enhanced {
            write!(f, " {a}.{b}.{c}")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text.replace('\n', " / "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Reply {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_and_no_injection() {
        let mut out = Vec::new();
        Reply::new(250, [2, 0, 0], "one\ntwo\r\x00three").write_to(&mut out);
        assert_eq!(out, b"250-2.0.0 one\r\n250 2.0.0 two  three\r\n");
        let mut out = Vec::new();
        Reply::plain(334, "").write_to(&mut out);
        assert_eq!(out, b"334 \r\n");
    }
}
