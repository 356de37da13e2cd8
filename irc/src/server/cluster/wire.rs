//! A change as a payload line: an IRC line (`:nick PRIVMSG #c :text`,
//! `UID nick user host`, `SQUIT node :why`), read back with irc-proto.

use irc_proto::{Command, Message};

use crate::server::linked::Remote;

/// One line of a payload, without its CRLF.
pub(super) fn event(prefix: Option<&str>, command: &str, args: &[&str]) -> String {
    crate::format_message(prefix, command, args)
        .map(|l| l.trim_end().to_owned())
        .unwrap_or_default()
}

/// A change from a payload line of `node`'s.
pub(super) fn parse(node: &str, l: &str) -> Option<Remote> {
    let m: Message = match l.parse() {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, line = l, "IRC cluster: unreadable change");
            return None;
        }
    };
    let nick = m.source_nickname().map(str::to_owned);
    let change = match (m.command, nick) {
        (Command::Raw(c, args), _) if c == "UID" && args.len() == 3 => {
            let mut a = args.into_iter();
            Remote::User {
                node: node.to_owned(),
                nick: a.next()?,
                user: a.next()?,
                host: a.next()?,
            }
        }
        (Command::SQUIT(gone, why), _) => Remote::Split { node: gone, why },
        (Command::JOIN(channel, _, _), Some(nick)) => Remote::Join { nick, channel },
        (Command::PART(channel, why), Some(nick)) => Remote::Part {
            nick,
            channel,
            why: why.unwrap_or_default(),
        },
        (Command::QUIT(why), Some(nick)) => Remote::Quit {
            nick,
            why: why.unwrap_or_default(),
        },
        (Command::NICK(new), Some(old)) => Remote::Nick { old, new },
        (Command::PRIVMSG(target, text), Some(nick)) => Remote::Say {
            nick,
            command: "PRIVMSG".into(),
            target,
            text,
        },
        (Command::NOTICE(target, text), Some(nick)) => Remote::Say {
            nick,
            command: "NOTICE".into(),
            target,
            text,
        },
        (Command::TOPIC(channel, topic), Some(nick)) => Remote::Topic {
            nick,
            channel,
            topic: topic.unwrap_or_default(),
        },
        _ => return None,
    };
    Some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_as_written() {
        let cases = [
            (
                event(None, "UID", &["ann", "a", "10.0.0.1"]),
                Remote::User {
                    node: "n".into(),
                    nick: "ann".into(),
                    user: "a".into(),
                    host: "10.0.0.1".into(),
                },
            ),
            (
                event(Some("ann"), "PRIVMSG", &["#c", "hello there: all"]),
                Remote::Say {
                    nick: "ann".into(),
                    command: "PRIVMSG".into(),
                    target: "#c".into(),
                    text: "hello there: all".into(),
                },
            ),
            (
                event(Some("ann"), "QUIT", &[""]),
                Remote::Quit {
                    nick: "ann".into(),
                    why: String::new(),
                },
            ),
            (
                event(None, "SQUIT", &["a.1f", "gone"]),
                Remote::Split {
                    node: "a.1f".into(),
                    why: "gone".into(),
                },
            ),
            (
                event(Some("ann"), "NICK", &["anna"]),
                Remote::Nick {
                    old: "ann".into(),
                    new: "anna".into(),
                },
            ),
        ];
        for (line, want) in cases {
            assert!(!line.contains('\n'), "{line:?}");
            assert_eq!(parse("n", &line), Some(want), "{line}");
        }
        assert_eq!(parse("n", "not an irc line \u{0}"), None);
        assert_eq!(parse("n", ":ann FROB x"), None);
    }
}
