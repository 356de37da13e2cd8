//! What a logged-in user's sessions run (Twisted's `ConchUser` and
//! `ISession`): an [`Avatar`] turns `exec`, `shell` and subsystem requests
//! into braid protocols on the channel. [`ProcessAvatar`] runs them as
//! processes of the server's own user, on a real pseudo-terminal when the
//! client asked for one.

use std::rc::Rc;

use braid::Protocol;

use crate::channel::{ChanInner, SessionChannel};

/// A logged-in user, as the SSH server asks it (Twisted's `ConchUser`
/// with `ISession`). Each method returns the protocol to run on the
/// session channel, or `None` to refuse the request.
pub trait Avatar: 'static {
    /// `exec`: run `command`.
    fn exec(&self, channel: &SessionChannel, command: &str) -> Option<Box<dyn Protocol>>;

    /// `shell`: an interactive session (on the terminal of
    /// [`SessionChannel::pty`], if one was asked for).
    fn shell(&self, channel: &SessionChannel) -> Option<Box<dyn Protocol>>;

    /// `subsystem` (`sftp`, say). The default refuses.
    fn subsystem(&self, channel: &SessionChannel, name: &str) -> Option<Box<dyn Protocol>> {
        let _ = (channel, name);
        None
    }

    /// Whether a `direct-tcpip` channel (`ssh -L`) may connect to
    /// `host:port`. The default: no (an application's own avatar should
    /// not turn its server into a proxy unasked).
    fn allow_direct_tcpip(&self, host: &str, port: u16) -> bool {
        let _ = (host, port);
        false
    }

    /// Whether `tcpip-forward` (`ssh -R`) may listen on `port` (always on
    /// loopback, as OpenSSH's `GatewayPorts no`). The default: no.
    fn allow_remote_forward(&self, address: &str, port: u16) -> bool {
        let _ = (address, port);
        false
    }

    /// Whether `pty-req` is granted. The default: yes.
    fn pty_allowed(&self) -> bool {
        true
    }

    /// Whether the client may set the variable `name` (`env`). The
    /// default is OpenSSH's usual `AcceptEnv LANG LC_*`.
    fn env_allowed(&self, name: &str) -> bool {
        name == "LANG" || name.starts_with("LC_")
    }
}

pub(crate) fn session_channel(chan: &Rc<ChanInner>) -> SessionChannel {
    SessionChannel::new(Rc::downgrade(chan))
}
