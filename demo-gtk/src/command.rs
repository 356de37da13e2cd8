//! What the user typed: a chat line or a slash command.

/// One line from the entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Nothing (blank line).
    Empty,
    /// Say this to the current buffer. `//text` says `/text`.
    Say(String),
    /// `/me waves`
    Me(String),
    /// `/join #channel` (a missing `#` is added).
    Join(String),
    /// `/part [#channel] [reason]`: the current channel when none is named.
    Part {
        /// The channel, if named.
        channel: Option<String>,
        /// Parting words.
        reason: Option<String>,
    },
    /// `/nick NEWNICK`
    Nick(String),
    /// `/msg NICK text`: opens a private buffer and says it there.
    Msg {
        /// To whom.
        target: String,
        /// What.
        text: String,
    },
    /// `/query NICK`: opens a private buffer.
    Query(String),
    /// `/topic text`: sets the current channel's topic.
    Topic(String),
    /// `/names`: asks for the current channel's members again.
    Names,
    /// `/close`: closes the current buffer (parts a channel).
    Close,
    /// `/quit [reason]`: disconnects.
    Quit(Option<String>),
    /// `/help`
    Help,
    /// A command we cannot use: what to tell the user.
    Bad(String),
}

/// The commands `/help` lists.
pub const HELP: &[&str] = &[
    "/join #channel — join a channel",
    "/part [reason] — leave this channel",
    "/me action — say what you do",
    "/msg nick text — a private message (opens its own tab)",
    "/query nick — open a private tab",
    "/nick name — change your nick",
    "/topic text — set this channel's topic",
    "/names — refresh the member list",
    "/close — close this tab",
    "/quit [reason] — disconnect",
];

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Parses one line from the entry.
pub fn parse_input(line: &str) -> Input {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Input::Empty;
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Input::Say(line.to_owned());
    };
    if rest.starts_with('/') {
        return Input::Say(rest.to_owned());
    }
    let (cmd, args) = split_word(rest);
    let need = |what: &str| Input::Bad(format!("/{cmd} needs {what}"));
    match cmd.to_ascii_lowercase().as_str() {
        "me" => match non_empty(args) {
            Some(t) => Input::Me(t),
            None => need("something to do"),
        },
        "join" | "j" => {
            let (chan, _) = split_word(args);
            if chan.is_empty() {
                return need("a channel");
            }
            let chan = if chan.starts_with(['#', '&']) {
                chan.to_owned()
            } else {
                format!("#{chan}")
            };
            if braid_irc::is_valid_channel(&chan) {
                Input::Join(chan)
            } else {
                Input::Bad(format!("{chan} is not a valid channel name"))
            }
        }
        "part" | "leave" => {
            let (first, more) = split_word(args);
            if first.starts_with(['#', '&']) {
                Input::Part {
                    channel: Some(first.to_owned()),
                    reason: non_empty(more),
                }
            } else {
                Input::Part {
                    channel: None,
                    reason: non_empty(args),
                }
            }
        }
        "nick" => {
            let (nick, _) = split_word(args);
            if nick.is_empty() {
                need("a nick")
            } else if braid_irc::is_valid_nick(nick) {
                Input::Nick(nick.to_owned())
            } else {
                Input::Bad(format!("{nick} is not a valid nick"))
            }
        }
        "msg" | "query" => {
            let (target, text) = split_word(args);
            if target.is_empty() {
                return need("a nick");
            }
            if !braid_irc::is_valid_nick(target) && !braid_irc::is_valid_channel(target) {
                return Input::Bad(format!("{target} is not a valid nick"));
            }
            match (cmd.eq_ignore_ascii_case("msg"), non_empty(text)) {
                (true, Some(text)) => Input::Msg {
                    target: target.to_owned(),
                    text,
                },
                (true, None) => need("a nick and a message"),
                (false, _) => Input::Query(target.to_owned()),
            }
        }
        "topic" => match non_empty(args) {
            Some(t) => Input::Topic(t),
            None => need("the new topic"),
        },
        "names" | "who" => Input::Names,
        "close" => Input::Close,
        "quit" | "disconnect" => Input::Quit(non_empty(args)),
        "help" | "?" => Input::Help,
        "" => Input::Bad("a command name must follow the /; //text says /text".into()),
        other => Input::Bad(format!("unknown command /{other}; /help lists them")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_said_and_a_double_slash_escapes() {
        assert_eq!(parse_input("hello there"), Input::Say("hello there".into()));
        assert_eq!(parse_input("//etc/hosts"), Input::Say("/etc/hosts".into()));
        assert_eq!(parse_input("   "), Input::Empty);
        assert_eq!(parse_input(""), Input::Empty);
    }

    #[test]
    fn commands_take_their_arguments() {
        assert_eq!(parse_input("/me waves"), Input::Me("waves".into()));
        assert_eq!(parse_input("/join rust"), Input::Join("#rust".into()));
        assert_eq!(parse_input("/JOIN #Rust"), Input::Join("#Rust".into()));
        assert_eq!(
            parse_input("/part #rust bye now"),
            Input::Part {
                channel: Some("#rust".into()),
                reason: Some("bye now".into())
            }
        );
        assert_eq!(
            parse_input("/part bye"),
            Input::Part {
                channel: None,
                reason: Some("bye".into())
            }
        );
        assert_eq!(parse_input("/nick alice"), Input::Nick("alice".into()));
        assert_eq!(
            parse_input("/msg bob hi bob"),
            Input::Msg {
                target: "bob".into(),
                text: "hi bob".into()
            }
        );
        assert_eq!(parse_input("/query bob"), Input::Query("bob".into()));
        assert_eq!(parse_input("/topic a b"), Input::Topic("a b".into()));
        assert_eq!(parse_input("/quit"), Input::Quit(None));
        assert_eq!(parse_input("/quit gone"), Input::Quit(Some("gone".into())));
        assert_eq!(parse_input("/help"), Input::Help);
        assert_eq!(parse_input("/close"), Input::Close);
        assert_eq!(parse_input("/names"), Input::Names);
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        for (line, says) in [
            ("/me", "/me needs"),
            ("/join", "/join needs a channel"),
            ("/join #a,b", "not a valid channel"),
            ("/nick", "/nick needs a nick"),
            ("/nick 9lives", "not a valid nick"),
            ("/msg bob", "needs a nick and a message"),
            ("/frobnicate", "unknown command /frobnicate"),
            ("/", "a command name must follow"),
        ] {
            match parse_input(line) {
                Input::Bad(msg) => assert!(msg.contains(says), "{line}: {msg}"),
                other => panic!("{line} parsed as {other:?}"),
            }
        }
    }
}
