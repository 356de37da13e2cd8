//! The server the demo runs when no address is given: braid's IRC server
//! in the window's own reactor, plus a small greeter bot, so that one
//! command shows a working chat and a second instance can join it.

use std::io;
use std::net::SocketAddr;

use braid::{ListeningPort, Reactor, ReconnectingClientFactory};
use braid_irc::{ClientConfig, IrcClient, IrcEvent, IrcServer, ServerConfig};

/// The bot's nick.
pub const BOT_NICK: &str = "braidbot";

/// A running embedded server.
pub struct Embedded {
    /// The server (user counts, channels).
    pub server: IrcServer,
    /// Where it listens.
    pub port: ListeningPort,
    /// The greeter bot's client.
    pub bot: IrcClient,
}

impl Embedded {
    /// The address others join with.
    pub fn addr(&self) -> SocketAddr {
        self.port.local_addr()
    }
}

/// Starts the server on `addr` (port 0 picks a free one) and its bot in
/// `channel`.
pub fn start(reactor: &Reactor, addr: SocketAddr, channel: &str) -> io::Result<Embedded> {
    let mut config = ServerConfig::default();
    config.name = "braid.embedded".into();
    config.motd = vec![
        "This IRC server runs inside a GTK window, in braid's reactor on GTK's main loop.".into(),
        "Others join with: cargo run -p demo-gtk -- THIS_HOST:PORT".into(),
    ];
    let server = IrcServer::new(config);
    let port = server.listen(reactor, addr)?;
    let channel = channel.to_owned();
    let bot = IrcClient::new(
        ClientConfig::new(BOT_NICK),
        move |client, event| match event {
            IrcEvent::Registered { .. } => {
                client.join(&channel);
            }
            IrcEvent::Joined { channel, nick } if nick == client.nick() => {
                client.set_topic(
                    &channel,
                    "braid demo: the network runs on GTK's main thread — say hi",
                );
            }
            IrcEvent::Joined { channel, nick } => {
                client.say(
                    &channel,
                    &format!("welcome, {nick}! Type /help for commands; say \"{BOT_NICK}: ping\" to measure a round trip."),
                );
            }
            IrcEvent::Message { from, target, text } => {
                let to_me = target == client.nick();
                let addressed = text
                    .strip_prefix(BOT_NICK)
                    .map(|r| r.trim_start_matches([':', ',', ' ']));
                let reply_to = if to_me { from.clone() } else { target };
                match addressed.or(to_me.then_some(text.as_str())) {
                    Some("ping") => client.say(&reply_to, &format!("{from}: pong")),
                    Some(_) => client.say(
                        &reply_to,
                        &format!(
                            "{from}: I answer \"ping\"; everything else is yours to chat about"
                        ),
                    ),
                    None => {}
                }
            }
            _ => {}
        },
    );
    let factory = ReconnectingClientFactory::new(bot.factory());
    reactor.connect_tcp(port.local_addr(), factory, None);
    Ok(Embedded { server, port, bot })
}
