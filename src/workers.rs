//! A reactor per core: N threads, each with its own `!Send` reactor set up
//! by the same closure, sharing listening ports, stopped together.
//!
//! ```text
//!   workers::run(4, setup)          (the calling thread: SIGINT/SIGTERM)
//!      ├─ thread braid-worker-0: Reactor::new(), setup(&reactor, 0), run()
//!      ├─ thread braid-worker-1: ...                      each accepts from
//!      ├─ ...                                             the shared port
//!      └─ on a signal, or a worker ending: every reactor stopped, joined
//!
//!   SharedPort::reuse_port(addr)   every worker binds its own socket to the port,
//!                                  SO_REUSEPORT (Linux) / SO_REUSEPORT_LB (FreeBSD):
//!                                  the kernel spreads connections, no thundering herd
//!   SharedPort::single(listener)   one socket, every worker accepting from a duplicate:
//!                                  an idle worker takes the next connection
//!   SharedPort::systemd()          the socket systemd passed (LISTEN_FDS), shared so
//! ```
//!
//! Which to use: `SO_REUSEPORT` hashes each new connection to a socket by
//! its addresses, without regard to how busy the worker behind it is. With
//! short requests that evens out; with long-lived connections (chat, mail
//! sessions, WebSockets) a worker can end up with many more connections
//! than another, and keeps getting its share of new ones even while
//! saturated. One shared socket ([`SharedPort::single`]) balances by load
//! instead: whichever worker comes back to its poller first accepts, so a
//! busy worker takes fewer; the cost is that every idle worker wakes for
//! each connection and all but one find nothing to accept (cheap at the
//! rates where it matters), and the spread between idle workers is uneven
//! (the one that last went back to its poller tends to win). Measured
//! (`worker-balance`, BENCHMARKS.md): with one worker busy 90% of the time,
//! `SO_REUSEPORT` still gives it 23-26% of 400 long-lived connections, the
//! shared socket 0-2%. braid uses `SO_REUSEPORT` by default and the shared
//! socket where the service's connections are long and its load uneven.
//!
//! Each worker has its own reactor, thread pool and state: nothing is
//! shared between workers unless the setup closure shares it (`Arc`s,
//! a database).

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::protocol::Factory;
use crate::reactor::{Reactor, ReactorHandle};
use crate::tcp::{ListeningPort, TcpListenOptions};

/// Worker threads, each running a reactor (see the [module](self)).
#[derive(Debug)]
pub struct Workers {
    threads: Vec<thread::JoinHandle<io::Result<()>>>,
    handles: Vec<ReactorHandle>,
}

impl Workers {
    /// Starts `n` threads (at least one); each makes a reactor, calls
    /// `setup(&reactor, index)` on it, and runs it. Returns once every
    /// setup has returned.
    ///
    /// # Errors
    ///
    /// The first setup's (or reactor's) error: the workers already
    /// started are stopped and joined first.
    pub fn start<F>(n: usize, setup: F) -> io::Result<Workers>
    where
        F: Fn(&Reactor, usize) -> io::Result<()> + Send + Sync + 'static,
    {
        Workers::start_notifying(n, setup, None)
    }

    fn start_notifying<F>(n: usize, setup: F, on_end: Option<ReactorHandle>) -> io::Result<Workers>
    where
        F: Fn(&Reactor, usize) -> io::Result<()> + Send + Sync + 'static,
    {
        let setup = Arc::new(setup);
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<ReactorHandle>>();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let (setup, ready, on_end) = (setup.clone(), ready_tx.clone(), on_end.clone());
            let t = thread::Builder::new()
                .name(format!("braid-worker-{i}"))
                .spawn(move || {
                    let reactor = match Reactor::new() {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
                            return Err(e);
                        }
                    };
                    if let Err(e) = setup(&reactor, i) {
                        let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                    let _ = ready.send(Ok(reactor.handle()));
                    drop(ready);
                    let result = reactor.run();
                    if let Some(h) = on_end {
                        // A worker that ended (stopped or failed) ends the rest.
                        h.stop();
                    }
                    result
                })?;
            threads.push(t);
        }
        drop(ready_tx);
        let mut handles = Vec::new();
        let mut first_error = None;
        for _ in 0..threads.len() {
            match ready_rx.recv() {
                Ok(Ok(h)) => handles.push(h),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error
                        .get_or_insert_with(|| io::Error::other("a worker died in its setup"));
                    break;
                }
            }
        }
        let workers = Workers { threads, handles };
        match first_error {
            None => Ok(workers),
            Some(e) => {
                workers.stop();
                let _ = workers.join();
                Err(e)
            }
        }
    }

    /// The workers' reactors, to reach them from any thread.
    pub fn handles(&self) -> &[ReactorHandle] {
        &self.handles
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether there are none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Asks every worker's reactor to stop (each one's shutdown lets its
    /// connections flush within its grace period). Returns at once.
    pub fn stop(&self) {
        for h in &self.handles {
            h.stop();
        }
    }

    /// Waits for every worker to end.
    ///
    /// # Errors
    ///
    /// The first worker's error (a panic is reported as one).
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for t in self.threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// Runs `n` workers (see [`Workers::start`]) until SIGINT or SIGTERM, or
/// until one of them ends; then stops them all and waits for them: what a
/// server's `main` calls. The calling thread waits on a small reactor of
/// its own (signals through its poller, no signal thread).
///
/// # Errors
///
/// A setup's error, a reactor's, or the first worker's.
///
/// ```no_run
/// use braid::workers::{self, SharedPort};
/// use braid::{Address, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) {
///         t.write(data);
///     }
/// }
///
/// let port = SharedPort::reuse_port("0.0.0.0:7000".parse().unwrap())?;
/// workers::run(4, move |reactor, _index| {
///     port.listen(reactor, |_: &Address| Echo)?;
///     Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub fn run<F>(n: usize, setup: F) -> io::Result<()>
where
    F: Fn(&Reactor, usize) -> io::Result<()> + Send + Sync + 'static,
{
    run_with_ready(n, setup, || {})
}

/// [`run`], calling `ready` on the calling thread once every worker's
/// setup has returned (where a server says it is listening: from then on
/// every worker takes connections).
///
/// # Errors
///
/// As [`run`].
pub fn run_with_ready<F>(n: usize, setup: F, ready: impl FnOnce()) -> io::Result<()>
where
    F: Fn(&Reactor, usize) -> io::Result<()> + Send + Sync + 'static,
{
    let main = Reactor::new()?;
    let workers = Workers::start_notifying(n, setup, Some(main.handle()))?;
    ready();
    let handles = workers.handles().to_vec();
    let m = main.clone();
    // SIGINT and SIGTERM (on Windows: Ctrl+C, the console closing) stop
    // every worker.
    let _signals = main.watch_signals(&crate::sys::STOP_SIGNALS, move |sig| {
        tracing::info!(signal = sig, "stopping the workers");
        for h in &handles {
            h.stop();
        }
        m.stop();
    })?;

    main.run()?;
    workers.stop();
    workers.join()
}

/// How the workers share a listening port. `Clone` and `Send`: give each
/// worker's setup a clone and call [`listen`](Self::listen) there.
#[derive(Debug, Clone)]
pub struct SharedPort {
    how: How,
}

#[derive(Debug, Clone)]
enum How {
    ReusePort {
        addr: SocketAddr,
        /// Holds a port 0 chose until the workers have theirs.
        _reserved: Arc<Mutex<Option<socket2::Socket>>>,
    },
    Single(Arc<socket2::Socket>),
}

impl SharedPort {
    /// Every worker binds its own socket to `addr` with the port shared
    /// (`SO_REUSEPORT`); with port 0 one free port is picked now, for all.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub fn reuse_port(addr: SocketAddr) -> io::Result<SharedPort> {
        // Bound (not listening) with the option, it holds the port for the
        // workers' sockets: a port 0 becomes one number for all of them.
        let socket = crate::tcp::bind_socket(addr, true)?;
        let addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))?;
        Ok(SharedPort {
            how: How::ReusePort {
                addr,
                _reserved: Arc::new(Mutex::new(Some(socket))),
            },
        })
    }

    /// One socket, listening already, that every worker accepts from (a
    /// duplicate each): balanced by load, for long-lived connections.
    pub fn single(listener: std::net::TcpListener) -> SharedPort {
        SharedPort {
            how: How::Single(Arc::new(socket2::Socket::from(listener))),
        }
    }

    /// One listening socket on `addr`, shared as [`single`](Self::single).
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub fn single_at(addr: SocketAddr) -> io::Result<SharedPort> {
        let socket = crate::tcp::bind_socket(addr, false)?;
        socket.listen(TcpListenOptions::default().backlog)?;
        Ok(SharedPort {
            how: How::Single(Arc::new(socket)),
        })
    }

    /// The first socket systemd passed (socket activation), shared as
    /// [`single`](Self::single); `None` without one.
    pub fn systemd() -> Option<SharedPort> {
        crate::sys::listen_sockets()
            .into_iter()
            .next()
            .map(|socket| SharedPort {
                how: How::Single(Arc::new(socket)),
            })
    }

    /// The address the workers listen on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.how {
            How::ReusePort { addr, .. } => Ok(*addr),
            How::Single(socket) => socket
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("not an IP socket")),
        }
    }

    /// This worker's listener on the shared port.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn listen(&self, reactor: &Reactor, factory: impl Factory) -> io::Result<ListeningPort> {
        match &self.how {
            How::ReusePort { addr, .. } => reactor.listen_tcp_with(
                *addr,
                factory,
                TcpListenOptions::default().reuse_port(true),
            ),
            How::Single(socket) => {
                crate::tcp::adopt_listening(reactor, socket.try_clone()?, Box::new(factory))
            }
        }
    }
}

/// The listening sockets systemd passed to this process (socket
/// activation: `LISTEN_PID`, `LISTEN_FDS`, as `sd_listen_fds(3)`), taken
/// once: the variables are removed, so a second call finds none.
#[cfg(unix)]
pub fn listen_fds() -> Vec<OwnedFd> {
    crate::sys::listen_fds()
}

#[cfg(all(test, unix))]
mod tests {
    use crate::sys::listen_fds_count;

    #[test]
    fn listen_fds_are_ours_only() {
        assert_eq!(listen_fds_count(Some("42"), Some("2"), 42), 2);
        assert_eq!(
            listen_fds_count(Some("41"), Some("2"), 42),
            0,
            "another process's"
        );
        assert_eq!(listen_fds_count(None, Some("2"), 42), 0);
        assert_eq!(listen_fds_count(Some("42"), Some("x"), 42), 0);
    }
}
