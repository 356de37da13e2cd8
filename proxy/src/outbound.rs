//! Where a proxy's outbound connections come from.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use braid::aio::Stream;
use braid::Reactor;

/// A connection attempt in progress.
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<Stream>>>>;

/// How [`PortForward`](crate::PortForward) and
/// [`SocksServer`](crate::SocksServer) reach their targets: TCP by default
/// ([`Tcp`]), or anything that gives an [`aio::Stream`](braid::aio::Stream)
/// (a test's in-memory pair, an SSH channel, another proxy). Dropping the
/// future abandons the attempt (the proxy does when its client leaves
/// first).
///
/// ```
/// use std::time::Duration;
/// use braid::aio::Stream;
/// use braid::Reactor;
/// use braid_proxy::outbound::{Connect, Connecting};
///
/// /// Everything goes to one host, whatever the client asked for.
/// struct Pinned(std::net::SocketAddr);
/// impl Connect for Pinned {
///     fn connect(&self, reactor: &Reactor, _host: &str, _port: u16, timeout: Duration) -> Connecting {
///         let (r, to) = (reactor.clone(), self.0);
///         Box::pin(async move { Stream::connect_timeout(&r, to, Some(timeout)).await })
///     }
/// }
/// let reactor = Reactor::new()?;
/// let socks = braid_proxy::SocksServer::new(&reactor)
///     .connect_with(Pinned("127.0.0.1:8080".parse().unwrap()));
/// # let _ = socks;
/// # std::io::Result::Ok(())
/// ```
pub trait Connect: 'static {
    /// Starts connecting to `host` (a name or an address) and `port`,
    /// failing after `timeout`.
    fn connect(&self, reactor: &Reactor, host: &str, port: u16, timeout: Duration) -> Connecting;
}

/// TCP through the reactor's resolver and Happy Eyeballs
/// ([`Stream::connect_host_timeout`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tcp;

impl Connect for Tcp {
    fn connect(&self, reactor: &Reactor, host: &str, port: u16, timeout: Duration) -> Connecting {
        let (r, host) = (reactor.clone(), host.to_owned());
        Box::pin(async move { Stream::connect_host_timeout(&r, &host, port, Some(timeout)).await })
    }
}
