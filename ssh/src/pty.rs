//! A command on a real pseudo-terminal: the child gets the terminal's
//! slave as its stdin, stdout, stderr and controlling terminal (in a
//! session of its own, as sshd does), the channel talks to the master
//! through braid's stdio transport, `window-change` resizes it.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::rc::Rc;

use braid::process::{Process, ProcessProtocol};
use braid::{CloseReason, PauseReading, Protocol, Reactor, Transport};

use crate::channel::{SessionChannel, WindowSize};
use crate::process_session::exit_report;

/// A running command on a terminal. Clone freely.
#[derive(Clone)]
pub(crate) struct Pty {
    inner: Rc<PtyInner>,
}

struct PtyInner {
    /// Kept for `TIOCSWINSZ`.
    master: OwnedFd,
    transport: RefCell<Option<Transport>>,
    process: RefCell<Option<Process>>,
    channel: Transport,
    status: Cell<Option<ExitStatus>>,
    output_done: Cell<bool>,
    finished: Cell<bool>,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn winsize(size: WindowSize) -> libc::winsize {
    let clamp = |v: u32| v.min(u16::MAX as u32) as u16;
    libc::winsize {
        ws_row: clamp(size.rows),
        ws_col: clamp(size.cols),
        ws_xpixel: clamp(size.width),
        ws_ypixel: clamp(size.height),
    }
}

#[cfg(not(target_vendor = "apple"))]
use libc::ptsname_r;
// In macOS's libc since 10.13.4, not declared by the libc crate.
#[cfg(target_vendor = "apple")]
extern "C" {
    fn ptsname_r(fd: libc::c_int, buf: *mut libc::c_char, len: libc::size_t) -> libc::c_int;
}

/// Opens a terminal pair: (master, slave), both close-on-exec.
fn open_pair(size: WindowSize) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: plain libc calls on descriptors this function owns; each
    // result is checked, each descriptor wrapped once in an OwnedFd.
    unsafe {
        // macOS's posix_openpt refuses O_CLOEXEC: set it after.
        #[cfg(target_vendor = "apple")]
        let m = check(libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY))?;
        #[cfg(not(target_vendor = "apple"))]
        let m = check(libc::posix_openpt(
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        let master = OwnedFd::from_raw_fd(m);
        #[cfg(target_vendor = "apple")]
        check(libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC))?;
        check(libc::grantpt(m))?;
        check(libc::unlockpt(m))?;
        let mut name = [0 as libc::c_char; 128];
        let r = ptsname_r(m, name.as_mut_ptr(), name.len());
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        let path = CStr::from_ptr(name.as_ptr());
        let s = check(libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        let slave = OwnedFd::from_raw_fd(s);
        let ws = winsize(size);
        check(libc::ioctl(m, libc::TIOCSWINSZ, &ws))?;
        Ok((master, slave))
    }
}

impl Pty {
    /// Starts `command` on a new terminal of `size`, its output written
    /// to `channel`, its exit reported there.
    pub(crate) fn spawn(
        reactor: &Reactor,
        command: &mut Command,
        size: WindowSize,
        channel: Transport,
    ) -> io::Result<Pty> {
        let (master, slave) = open_pair(size)?;
        let slave_fd = slave.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls
        // (setsid, ioctl, dup2) on a descriptor the child inherited.
        unsafe {
            command.pre_exec(move || {
                check(libc::setsid())?;
                check(libc::ioctl(slave_fd, libc::TIOCSCTTY as _, 0))?;
                for fd in 0..3 {
                    check(libc::dup2(slave_fd, fd))?;
                }
                Ok(())
            });
        }
        let inner = Rc::new(PtyInner {
            master: master.try_clone()?,
            transport: RefCell::new(None),
            process: RefCell::new(None),
            channel: channel.clone(),
            status: Cell::new(None),
            output_done: Cell::new(false),
            finished: Cell::new(false),
        });
        let pty = Pty { inner };
        let process = reactor.spawn_process(command, Exit(pty.clone()))?;
        // The child has its copies; ours would keep the master from ever
        // seeing the end of the terminal.
        drop(slave);
        process.close_stdin();
        *pty.inner.process.borrow_mut() = Some(process);
        let input = master.try_clone()?;
        let t = reactor.stdio_on(input, master, Master(pty.clone()))?;
        let _ = channel.register_producer(Rc::new(PauseReading(t.clone())), true);
        *pty.inner.transport.borrow_mut() = Some(t);
        Ok(pty)
    }

    /// The terminal's master side: writes are what the user types.
    pub(crate) fn master(&self) -> Transport {
        self.inner
            .transport
            .borrow()
            .clone()
            .expect("the terminal is open")
    }

    /// The command, for signals.
    pub(crate) fn process(&self) -> Process {
        self.inner
            .process
            .borrow()
            .clone()
            .expect("the command started")
    }

    /// Resizes the terminal (the command gets `SIGWINCH`).
    pub(crate) fn resize(&self, size: WindowSize) {
        let ws = winsize(size);
        // SAFETY: an ioctl on a descriptor we own, with a valid winsize.
        let r = unsafe { libc::ioctl(self.inner.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if r < 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "resizing the terminal failed");
        }
    }

    /// Once the command exited and the terminal drained: the exit goes
    /// to the channel, which closes.
    fn maybe_finish(&self) {
        let i = &self.inner;
        let Some(status) = i.status.get() else {
            return;
        };
        if !i.output_done.get() || i.finished.replace(true) {
            return;
        }
        if let Some(ch) = i.channel.layer::<SessionChannel>() {
            ch.set_exit(exit_report(status));
        }
        i.channel.lose_connection();
    }
}

/// The command's exit.
struct Exit(Pty);

impl ProcessProtocol for Exit {
    // Its stdout and stderr are the terminal; these pipes stay empty.
    fn out_received(&mut self, _: &Process, _: &[u8]) {}

    fn process_exited(&mut self, _: &Process, status: ExitStatus) {
        self.0.inner.status.set(Some(status));
        self.0.maybe_finish();
    }
}

/// The master side: the terminal's output to the channel.
struct Master(Pty);

impl Protocol for Master {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.inner.channel.write(data);
    }

    fn read_eof(&mut self, t: &Transport) {
        t.lose_connection();
    }

    fn connection_lost(&mut self, _: &CloseReason) {
        // EIO on the master: every slave descriptor closed.
        self.0.inner.output_done.set(true);
        self.0.maybe_finish();
    }
}
