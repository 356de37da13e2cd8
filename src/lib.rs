//! # braid
//!
//! Twisted's model of network programming, in Rust, living inside the event
//! loop your application already has: GTK4/glib, winit, calloop, or a loop
//! of your own. Sockets, timers and protocols run on the GUI thread, with no
//! runtime thread beside it and no channels in between.
//!
//! ```text
//!   your code           ┌──────────────────────┐
//!   (pure state         │  Protocol            │  connection_made / data_received /
//!    machines)          │  LineReceiver, ...   │  read_eof / connection_lost
//!                       └──────▲────────┬──────┘
//!                  bytes, EOF, │        │ write, lose_connection,
//!                  close reason│        │ pause, register_producer
//!                       ┌──────┴────────▼──────┐
//!   transports          │  Transport           │  TCP · Unix · TLS (a layer) · pipes
//!                       │                      │  · stdio · in-memory
//!                       │  write buffer,       │  watermarks, half-close, abort
//!                       └──────▲────────┬──────┘
//!                  readiness   │        │ register fd, interest
//!                       ┌──────┴────────▼──────┐
//!   the reactor         │  Reactor (!Send)     │  polling (epoll) + timerfd,
//!                       │  call_later/call_soon│  call_from_thread (Send handle)
//!                       └──────▲────────┬──────┘
//!                  dispatch()  │        │ ONE fd: readable = work to do
//!                       ┌──────┴────────▼──────┐
//!   the host loop       │  HostLoop            │  standalone run() · glib · calloop
//!                       │                      │  · winit · your poll(2) loop
//!                       └──────────────────────┘
//! ```
//!
//! A protocol never sees a socket or the clock; a transport never knows what
//! the bytes mean; the reactor knows nothing of GUIs; a host loop needs only
//! to watch one fd and call [`Reactor::dispatch`]. See [`host`] for the
//! contract.
//!
//! ## An echo server
//!
//! ```no_run
//! use braid::{Address, Protocol, Reactor, Transport};
//!
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, transport: &Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//! }
//!
//! let reactor = Reactor::new()?;
//! let port = reactor.listen_tcp("127.0.0.1:8000".parse().unwrap(), |_: &Address| Echo)?;
//! println!("echo on {}", port.local_addr());
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! ## Transports
//!
//! - TCP: [`Reactor::listen_tcp`], [`Reactor::connect_tcp`].
//! - Unix sockets: [`Reactor::listen_unix`], [`Reactor::connect_unix`],
//!   file descriptors with [`Transport::send_file_descriptor`].
//! - TLS (feature `tls`): `Reactor::listen_tls`, `Reactor::connect_tls`,
//!   `Transport::start_tls`, and `tls::TlsProtocol` over any transport.
//! - Datagrams: [`Reactor::listen_udp`], multicast, Unix datagrams
//!   ([`datagram`]).
//! - Child processes: [`Reactor::spawn_process`] ([`process`]).
//! - This process's stdin and stdout: [`Reactor::stdio`] ([`stdio`]).
//!
//! Above the transports: async streams ([`aio`]) for runtime-agnostic async
//! crates, and HTTP (feature `web`): hyper's state machines run on the
//! reactor, over any of these transports, under any host loop.
//!
//! ## Names
//!
//! Twisted's concepts, in Rust's case: `connectionMade` is
//! [`Protocol::connection_made`], `callLater` is [`Reactor::call_later`],
//! `loseConnection` is [`Transport::lose_connection`]. Every such item has a
//! doc alias, so searching the docs for the Twisted name finds it.
//!
//! ## Features
//!
//! - `testing`: the test doubles in [`testing`] (in-memory transport,
//!   memory reactor with a fake clock, connected pairs).
//! - `irc`: the IRC server and client (module `irc`, on irc-proto);
//!   implies `cred` (the server password goes through a portal).
//! - `tls`: TLS on rustls ([`tls`]): `listen_tls`, `connect_tls`,
//!   `Transport::start_tls`, and a TLS layer over any transport.
//! - `cred`: authentication ([`cred`]): portal, realm, checkers (in-memory,
//!   argon2 password file, anonymous), throttled failures.
//! - `pb`: Perspective Broker ([`pb`]), wire-compatible with Twisted's;
//!   implies `cred`.
//! - `sqlite`: `db::ConnectionPool`, SQLite on worker threads with results
//!   on the reactor thread (Twisted's `adbapi`); bundles SQLite.
//! - `web`: HTTP on hyper 1.x run by the reactor (module `web`): `Site`
//!   and resources, static files, the `Agent` client, reverse and forward
//!   proxies. `http2` adds HTTP/2 (negotiated by ALPN over TLS).
//!
//! ## Panics in callbacks
//!
//! A panic in a protocol callback is caught at the dispatch boundary,
//! logged with `tracing`, and ends only that connection; a panic in a timer
//! or queued call is logged and the reactor runs on. This needs the default
//! `panic = "unwind"`.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod aio;
mod conn;
mod connector;
pub mod datagram;
mod defer;
mod error;
pub mod framing;
pub mod host;
pub mod layer;
mod listener;
mod panics;
pub mod process;
mod protocol;
mod reactor;
mod reconnect;
mod signals;
pub mod stdio;
mod stream_socket;
mod sys;
pub mod tcp;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod threads;
mod transport;
pub mod unix;

pub use connector::{Connector, WeakConnector};
pub use defer::{first_success, gather, Deferred, DeferredList, Failure, FailureKind, Resolver};
pub use error::{CloseKind, CloseReason, ConnectError, ConnectErrorKind};
pub use host::{Budget, Dispatched, HostLoop};
pub use panics::{catch_panic, panic_message};
pub use protocol::{ClientFactory, Factory, Protocol};
pub use reactor::{
    DelayedCall, FakeClock, HostGuard, JoinHandle, Reactor, ReactorGone, ReactorHandle,
    ShutdownPhase, Sleep, TriggerId, WeakReactor,
};
pub use reconnect::ReconnectingClientFactory;
pub use signals::SignalWatch;
pub use tcp::ListeningPort;
pub use threads::{ThreadPool, ThreadResolver};
pub use transport::{Address, AlreadyRegistered, Producer, Transport, TransportImpl};
pub use unix::{UnixListenOptions, UnixListeningPort};
