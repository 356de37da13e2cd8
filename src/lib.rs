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
//! - Datagrams: [`Reactor::listen_udp`], multicast, Unix datagrams
//!   ([`datagram`]).
//! - Child processes: [`Reactor::spawn_process`] ([`process`]).
//! - This process's stdin and stdout: [`Reactor::stdio`] ([`stdio`]).
//! - In memory, for tests: [`testing::connected_pair`] (feature `testing`).
//!
//! Above the transports: async streams ([`aio`]) for runtime-agnostic async
//! crates, over any connection.
//!
//! ## The family of crates
//!
//! The core knows no battery. Each battery is a crate built on the public
//! extension surface below, the same one a third party would use:
//!
//! ```text
//!                       braid (this crate)
//!      ┌────────────┬─────────┴───┬─────────────┬──────────────┐
//!  braid-tls    braid-cred      braid-db     braid-glib, braid-calloop,
//!      │         │       │         │         braid-winit (host loops)
//!  braid-web   braid-pb  braid-irc ┘
//! ```
//!
//! - `braid-tls`: TLS on rustls as a [`layer`], `start_tls` in place,
//!   `listen_tls`/`connect_tls`.
//! - `braid-cred`: portal, realm, checkers, argon2 password files.
//! - `braid-db`: the SQLite pool (Twisted's `adbapi`).
//! - `braid-web`: HTTP on hyper 1.x run by the reactor.
//! - `braid-irc`: IRC server and client. `braid-pb`: Perspective Broker.
//!
//! ## The extension surface
//!
//! - [`layer`]: something between a connection's wire and its protocol,
//!   started mid-stream with [`Transport::start_layer`] without losing or
//!   reordering a byte, found again with [`Transport::layer`].
//! - [`TransportImpl`] + [`Transport::new`]: transports of one's own (an
//!   SSH channel, a tunnel) that every protocol, framing receiver and
//!   [`aio`] stream accepts unchanged.
//! - [`aio::Stream`] and [`aio::StreamProtocol`]: an async stream over any
//!   connection, with [`aio::Stream::on_lost`].
//! - [`Reactor::deferred_from_thread`] + [`ThreadResolver`] and
//!   [`threads::WorkQueue`]: pools of one's own whose results land on the
//!   reactor thread.
//! - [`hostname::HostnameResolver`] + [`Reactor::install_name_resolver`]:
//!   where host names go (a DNS resolver, a test double); the connector
//!   races the addresses with Happy Eyeballs as they arrive.
//! - [`WeakReactor`], [`WeakConnector`], [`catch_panic`],
//!   [`Reactor::watch_signals`].
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
//!   memory reactor with a fake clock, connected pairs, the host
//!   conformance suite).
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
mod cooperator;
pub mod datagram;
mod defer;
mod error;
pub mod fd;
#[cfg(unix)]
mod fd_watch;
pub mod framing;
pub mod host;
pub mod hostname;
pub mod layer;
mod listener;
mod looping;
mod panics;
#[cfg(unix)]
pub mod process;
mod protocol;
mod reactor;
mod reconnect;
mod signals;
#[cfg(unix)]
pub mod stdio;
mod stream_socket;
mod sys;
pub mod tcp;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod threads;
mod transport;
#[cfg(unix)]
pub mod unix;
pub mod workers;

pub use connector::{Connector, WeakConnector};
pub use cooperator::{CooperativeTask, Cooperator, Step};
pub use defer::{first_success, gather, Deferred, DeferredList, Failure, FailureKind, Resolver};
pub use error::{CloseKind, CloseReason, ConnectError, ConnectErrorKind};
#[cfg(unix)]
pub use fd_watch::{FdReady, FdWatch};
pub use host::{Budget, Dispatched, HostLoop};
pub use looping::LoopingCall;
pub use panics::{catch_panic, panic_message};
pub use protocol::{ClientFactory, Factory, Protocol};
pub use reactor::{
    DelayedCall, FakeClock, HostGuard, JoinHandle, Reactor, ReactorGone, ReactorHandle,
    ShutdownPhase, Sleep, TriggerId, WeakReactor, DEFAULT_SHUTDOWN_GRACE,
};
pub use reconnect::ReconnectingClientFactory;
pub use signals::SignalWatch;
pub use tcp::{ListeningPort, TcpListenOptions};
pub use threads::{ThreadPool, ThreadResolver};
pub use transport::{Address, AlreadyRegistered, PauseReading, Producer, Transport, TransportImpl};
#[cfg(unix)]
pub use unix::{UnixListenOptions, UnixListeningPort};
