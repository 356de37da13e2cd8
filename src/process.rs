//! Child processes (Twisted's `spawnProcess` and `ProcessProtocol`): the
//! child's stdin, stdout and stderr are pipes on the reactor with the same
//! write buffer, backpressure and close handling as sockets, and its exit
//! is noticed through a pidfd in the poller (Linux 5.3+), with no thread
//! and no SIGCHLD handler. Every child is reaped as soon as it exits.
//!
//! ```no_run
//! use std::process::{Command, ExitStatus};
//! use braid::process::{Process, ProcessProtocol};
//! use braid::Reactor;
//!
//! struct Lines;
//! impl ProcessProtocol for Lines {
//!     fn out_received(&mut self, _: &Process, data: &[u8]) {
//!         print!("{}", String::from_utf8_lossy(data));
//!     }
//!     fn process_ended(&mut self, p: &Process, status: ExitStatus) {
//!         println!("{} ended: {status}", p.pid());
//!         p.reactor().map(|r| r.stop());
//!     }
//! }
//!
//! let reactor = Reactor::new()?;
//! let mut ls = Command::new("ls");
//! ls.arg("-l").current_dir("/");
//! reactor.spawn_process(&mut ls, Lines)?;
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! If the reactor goes away before a child exits, the child is left
//! running (as in Twisted) and is not reaped by braid.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::conn::{Conn, Wire};
use crate::error::CloseReason;
use crate::host::Budget;
use crate::panics::catch_panic;
use crate::protocol::Protocol;
use crate::reactor::{DelayedCall, Reactor, Source, WeakReactor};
use crate::sys;
use crate::transport::{Address, Transport};

/// Without a pidfd, how often a child is checked for exit.
const POLL_EXIT: Duration = Duration::from_millis(50);

/// What a child process's user implements (Twisted's `ProcessProtocol`).
/// Every method has a default except [`out_received`](Self::out_received).
pub trait ProcessProtocol: 'static {
    /// The child is running and its pipes are open; writing to stdin is
    /// possible from here on.
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, process: &Process) {
        let _ = process;
    }

    /// Bytes from the child's stdout.
    #[doc(alias = "outReceived")]
    fn out_received(&mut self, process: &Process, data: &[u8]);

    /// Bytes from the child's stderr. The default drops them.
    #[doc(alias = "errReceived")]
    fn err_received(&mut self, process: &Process, data: &[u8]) {
        let _ = (process, data);
    }

    /// The child's stdin closed (by [`Process::close_stdin`], or because
    /// the child closed its end).
    #[doc(alias = "inConnectionLost")]
    fn in_connection_lost(&mut self, process: &Process) {
        let _ = process;
    }

    /// The child's stdout reached end of file.
    #[doc(alias = "outConnectionLost")]
    fn out_connection_lost(&mut self, process: &Process) {
        let _ = process;
    }

    /// The child's stderr reached end of file.
    #[doc(alias = "errConnectionLost")]
    fn err_connection_lost(&mut self, process: &Process) {
        let _ = process;
    }

    /// The child exited (and was reaped); its pipes may still hold data.
    /// `status.code()` is its exit code, or
    /// `std::os::unix::process::ExitStatusExt::signal` the signal that
    /// ended it.
    #[doc(alias = "processExited")]
    fn process_exited(&mut self, process: &Process, status: ExitStatus) {
        let _ = (process, status);
    }

    /// The child exited and all its pipes are closed: nothing more will
    /// come. The protocol is dropped after this.
    #[doc(alias = "processEnded")]
    fn process_ended(&mut self, process: &Process, status: ExitStatus) {
        let _ = (process, status);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Stdin,
    Stdout,
    Stderr,
}

struct Inner {
    me: Weak<Inner>,
    reactor: WeakReactor,
    pid: u32,
    child: RefCell<Option<Child>>,
    pidfd: RefCell<Option<(OwnedFd, usize)>>,
    poll_timer: RefCell<Option<DelayedCall>>,
    status: Cell<Option<ExitStatus>>,
    protocol: RefCell<Option<Box<dyn ProcessProtocol>>>,
    pipes: [RefCell<Option<Transport>>; 3],
    open_pipes: Cell<u8>,
    ended: Cell<bool>,
}

/// A running (or finished) child process: its pid, its stdin, signals.
/// Clone it freely.
#[derive(Clone)]
pub struct Process {
    inner: Rc<Inner>,
}

impl Process {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    fn pipe(&self, role: Role) -> Option<Transport> {
        self.inner.pipes[role as usize].borrow().clone()
    }

    /// The child's stdin as a transport (for producers and watermarks),
    /// while it is open.
    pub fn stdin(&self) -> Option<Transport> {
        self.pipe(Role::Stdin)
    }

    /// Writes to the child's stdin (buffered; nothing is lost while the
    /// child is slow to read).
    pub fn write(&self, data: &[u8]) {
        if let Some(t) = self.pipe(Role::Stdin) {
            t.write(data);
        }
    }

    /// Closes the child's stdin once what was written is sent (Twisted's
    /// `closeStdin`).
    #[doc(alias = "closeStdin")]
    pub fn close_stdin(&self) {
        if let Some(t) = self.pipe(Role::Stdin) {
            t.lose_connection();
        }
    }

    /// Stops reading the child's stdout and stderr: once the pipes fill,
    /// the child blocks in its writes.
    pub fn pause_reading(&self) {
        for role in [Role::Stdout, Role::Stderr] {
            if let Some(t) = self.pipe(role) {
                t.pause_reading();
            }
        }
    }

    /// Reads the child's stdout and stderr again.
    pub fn resume_reading(&self) {
        for role in [Role::Stdout, Role::Stderr] {
            if let Some(t) = self.pipe(role) {
                t.resume_reading();
            }
        }
    }

    /// Sends `signal` (such as `libc::SIGTERM`) to the child (Twisted's
    /// `signalProcess`), through its pidfd where there is one, so a
    /// recycled pid is never hit.
    ///
    /// # Errors
    ///
    /// `NotFound` once the child has exited; the OS's error otherwise.
    #[doc(alias = "signalProcess")]
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        if self.inner.status.get().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the process has exited",
            ));
        }
        let pidfd = self.inner.pidfd.borrow();
        sys::signal_process(
            self.inner.pid,
            pidfd.as_ref().map(|(fd, _)| fd.as_fd()),
            signal,
        )
    }

    /// `SIGKILL`.
    pub fn kill(&self) -> io::Result<()> {
        self.signal(sys::SIGKILL)
    }

    /// How the child exited, once it has.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.inner.status.get()
    }

    /// Whether the child has not exited yet.
    pub fn is_running(&self) -> bool {
        self.inner.status.get().is_none()
    }

    /// The reactor the process lives on.
    pub fn reactor(&self) -> Option<Reactor> {
        self.inner.reactor.upgrade()
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.inner.pid)
            .field("status", &self.inner.status.get())
            .field("open_pipes", &self.inner.open_pipes.get())
            .finish()
    }
}

impl Inner {
    fn process(&self) -> Option<Process> {
        Some(Process {
            inner: self.me.upgrade()?,
        })
    }

    /// Calls the protocol; a panic kills the child and ends the process's
    /// protocol.
    fn call(&self, f: impl FnOnce(&mut dyn ProcessProtocol, &Process)) {
        let Some(process) = self.process() else {
            return;
        };
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            tracing::warn!(pid = self.pid, "process protocol re-entered; call skipped");
            return;
        };
        let Some(p) = slot.as_mut() else { return };
        let ok = catch_panic("process protocol", || f(&mut **p, &process));
        drop(slot);
        if ok.is_none() {
            let _ = process.kill();
            for pipe in &self.pipes {
                let t = pipe.borrow().clone();
                if let Some(t) = t {
                    t.abort_connection();
                }
            }
        }
    }

    fn pipe_closed(&self, role: Role) {
        drop(self.pipes[role as usize].borrow_mut().take());
        self.open_pipes.set(self.open_pipes.get().saturating_sub(1));
        self.call(|p, proc| match role {
            Role::Stdin => p.in_connection_lost(proc),
            Role::Stdout => p.out_connection_lost(proc),
            Role::Stderr => p.err_connection_lost(proc),
        });
        self.maybe_end();
    }

    /// Reaps the child if it has exited.
    fn reap(&self) {
        let status = match self.child.borrow_mut().as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => status,
            Some(Ok(None)) | None => return,
            Some(Err(e)) => {
                tracing::error!(pid = self.pid, error = %e, "waiting for a child failed");
                return;
            }
        };
        drop(self.child.borrow_mut().take());
        self.status.set(Some(status));
        let watch = self.pidfd.borrow_mut().take();
        if let (Some((fd, key)), Some(r)) = (watch, self.reactor.upgrade()) {
            r.deregister_fd(fd.as_fd(), key);
        }
        if let Some(t) = self.poll_timer.borrow_mut().take() {
            t.cancel();
        }
        self.call(|p, proc| p.process_exited(proc, status));
        self.maybe_end();
    }

    fn maybe_end(&self) {
        let Some(status) = self.status.get() else {
            return;
        };
        if self.open_pipes.get() > 0 || self.ended.replace(true) {
            return;
        }
        self.call(|p, proc| p.process_ended(proc, status));
        // Dropping the protocol breaks any cycle through a Process it holds.
        let protocol = self
            .protocol
            .try_borrow_mut()
            .ok()
            .and_then(|mut p| p.take());
        drop(protocol);
    }

    fn poll_exit(&self, reactor: &Reactor) {
        let me = self.me.clone();
        let timer = reactor.call_later(POLL_EXIT, move || {
            if let Some(inner) = me.upgrade() {
                inner.reap();
                if inner.status.get().is_none() {
                    if let Some(r) = inner.reactor.upgrade() {
                        inner.poll_exit(&r);
                    }
                }
            }
        });
        *self.poll_timer.borrow_mut() = Some(timer);
    }
}

/// Readiness of the pidfd: the child exited. Holds the process alive
/// while the reactor watches it (a user need not keep a `Process`).
struct ExitWatch(Rc<Inner>);

impl Source for ExitWatch {
    fn ready(&self, readable: bool, _: bool, _: &Budget) {
        if readable {
            self.0.reap();
        }
    }
    fn shutdown(&self) {}
}

/// One end of a pipe to or from the child.
pub(crate) struct PipeWire {
    fd: RefCell<Option<OwnedFd>>,
    writer: bool,
    addr: Address,
}

impl PipeWire {
    pub(crate) fn new(fd: OwnedFd, writer: bool, addr: Address) -> io::Result<PipeWire> {
        set_nonblocking(fd.as_fd(), true)?;
        Ok(PipeWire {
            fd: RefCell::new(Some(fd)),
            writer,
            addr,
        })
    }

    fn with<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> io::Result<R>) -> io::Result<R> {
        match &*self.fd.borrow() {
            Some(fd) => f(fd.as_fd()),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

pub(crate) use crate::sys::set_nonblocking;

impl Wire for PipeWire {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.writer {
            // Only an error wakes a pipe's write end for reading: the
            // child closed its end.
            return self.with(|fd| {
                if sys::write_end_hung_up(fd) {
                    Err(io::ErrorKind::BrokenPipe.into())
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            });
        }
        self.with(|fd| sys::read_fd(fd, buf))
    }

    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.writer {
            return Err(io::ErrorKind::Unsupported.into());
        }
        self.with(|fd| sys::writev_fd(fd, bufs))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        // A pipe half-closes by closing; the Conn deregisters it first.
        Ok(())
    }

    fn register(&self, reactor: &Reactor, source: Rc<dyn Source>) -> io::Result<usize> {
        let fd = self.with(|fd| Ok(fd.as_raw_fd()))?;
        reactor.register_fd(fd, source, true, false)
    }

    fn set_interest(
        &self,
        reactor: &Reactor,
        key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        self.with(|fd| reactor.modify_fd(fd, key, read, write))
    }

    fn close(&self, reactor: &Reactor, key: usize) {
        let fd = self.fd.borrow_mut().take();
        if let Some(fd) = fd {
            reactor.deregister_fd(fd.as_fd(), key);
        }
    }

    fn peer_addr(&self) -> Address {
        self.addr.clone()
    }

    fn local_addr(&self) -> Address {
        self.addr.clone()
    }
}

/// Puts one pipe's events through to the process protocol. Holds the
/// process alive while the pipe is open; the cycle through `Inner::pipes`
/// ends when the pipe closes.
struct PipeProtocol {
    process: Rc<Inner>,
    role: Role,
}

impl Protocol for PipeProtocol {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        let role = self.role;
        self.process.call(|p, proc| match role {
            Role::Stdout => p.out_received(proc, data),
            Role::Stderr => p.err_received(proc, data),
            Role::Stdin => {}
        });
    }

    fn connection_lost(&mut self, _: &CloseReason) {
        self.process.pipe_closed(self.role);
    }
}

impl Reactor {
    /// Starts `command` with its stdin, stdout and stderr piped to
    /// `protocol` (Twisted's `spawnProcess`). Arguments, environment and
    /// working directory are the command's; its stdio settings are
    /// replaced by pipes. Returns once the child is running;
    /// `connection_made` has been called by then.
    ///
    /// # Errors
    ///
    /// What `Command::spawn` reports (program not found, not executable,
    /// a bad working directory), or a registration failure (the child is
    /// then killed and reaped).
    #[doc(alias = "spawnProcess")]
    pub fn spawn_process(
        &self,
        command: &mut Command,
        protocol: impl ProcessProtocol,
    ) -> io::Result<Process> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let pid = child.id();
        let pipes = (
            child.stdin.take().map(OwnedFd::from),
            child.stdout.take().map(OwnedFd::from),
            child.stderr.take().map(OwnedFd::from),
        );
        let inner = Rc::new_cyclic(|me| Inner {
            me: me.clone(),
            reactor: self.downgrade(),
            pid,
            child: RefCell::new(Some(child)),
            pidfd: RefCell::new(None),
            poll_timer: RefCell::new(None),
            status: Cell::new(None),
            protocol: RefCell::new(Some(Box::new(protocol))),
            pipes: Default::default(),
            open_pipes: Cell::new(0),
            ended: Cell::new(false),
        });
        let started = (|| {
            let (stdin, stdout, stderr) = pipes;
            let all = [
                (stdin, Role::Stdin),
                (stdout, Role::Stdout),
                (stderr, Role::Stderr),
            ];
            for (fd, role) in all {
                let Some(fd) = fd else { continue };
                let addr = Address::Process {
                    pid,
                    fd: role as u8,
                };
                let wire = PipeWire::new(fd, role == Role::Stdin, addr)?;
                let adapter = PipeProtocol {
                    process: inner.clone(),
                    role,
                };
                let conn = Conn::start(self, wire, Box::new(adapter), None)?;
                *inner.pipes[role as usize].borrow_mut() = Some(conn.transport());
                inner.open_pipes.set(inner.open_pipes.get() + 1);
            }
            match sys::process_fd(pid) {
                Ok(fd) => {
                    let watch = Rc::new(ExitWatch(inner.clone()));
                    let key = self.register_fd(fd.as_raw_fd(), watch, true, false)?;
                    *inner.pidfd.borrow_mut() = Some((fd, key));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no pidfd: checking for the child's exit every 50 ms");
                    inner.poll_exit(self);
                }
            }
            io::Result::Ok(())
        })();
        if let Err(e) = started {
            drop(inner.protocol.borrow_mut().take());
            if let Some(mut c) = inner.child.borrow_mut().take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            for pipe in &inner.pipes {
                let t = pipe.borrow_mut().take();
                if let Some(t) = t {
                    t.abort_connection();
                }
            }
            return Err(e);
        }
        inner.call(|p, proc| p.connection_made(proc));
        Ok(Process { inner })
    }
}
