//! Windows backend of [`crate::sys`]: sockets through polling's IOCP (its
//! AFD backend), the reactor's timers in the host's wait (no timer object
//! in the port yet), and none of the Unix-only pieces (descriptor passing,
//! pipes and terminals in the poller, pidfds, signals), which the crate
//! leaves out on Windows at compile time.

use std::io;
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};

use socket2::{SockAddr, Socket};
use windows_sys::Win32::Networking::WinSock;

/// The raw form of what the poller registers: a socket.
pub(crate) type RawSource = RawSocket;
/// The borrowed form of what the poller registers: a socket.
pub(crate) type BorrowedSource<'a> = BorrowedSocket<'a>;

/// What the poller can watch, as a raw and a borrowed source.
pub(crate) trait AsSource {
    /// The raw socket, for `Poller::add`.
    fn raw_source(&self) -> RawSource;
    /// The borrowed socket, for `Poller::modify`/`delete`.
    fn source(&self) -> BorrowedSource<'_>;
}

impl AsSource for Socket {
    fn raw_source(&self) -> RawSource {
        self.as_raw_socket()
    }
    fn source(&self) -> BorrowedSource<'_> {
        self.as_socket()
    }
}

/// A socket address as braid names it: an IP address (Unix sockets are
/// not offered on Windows).
pub(crate) fn address_of(a: &SockAddr) -> crate::transport::Address {
    match a.as_socket() {
        Some(ip) => crate::transport::Address::Tcp(ip),
        None => crate::transport::Address::Unix(None),
    }
}

/// Lets other sockets bind the same UDP port, for multicast: Windows'
/// `SO_REUSEADDR` is what the Unix pair is there.
pub(crate) fn share_datagram_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_address(true)
}

/// Whether a datagram socket's error is an earlier datagram refused (an
/// ICMP port unreachable): Windows reports it as `WSAECONNRESET` on the
/// next receive.
pub(crate) fn is_datagram_refusal(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

/// Windows sockets raise no SIGPIPE: no flags needed.
pub(crate) const SEND_FLAGS: i32 = 0;

/// Makes a stream socket non-blocking.
pub(crate) fn prepare_stream(socket: &Socket) -> io::Result<()> {
    socket.set_nonblocking(true)
}

/// Accepts one connection as a non-blocking, non-inherited socket.
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let (s, a) = listener.accept()?;
    prepare_stream(&s)?;
    Ok((s, a))
}

/// Nothing to give back: Windows' heap returns free pages itself.
pub(crate) fn release_free_memory() {}

/// True for the errors that mean "no socket left" (`WSAEMFILE`,
/// `WSAENOBUFS`).
pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(WinSock::WSAEMFILE) | Some(WinSock::WSAENOBUFS)
    )
}

/// No reserve is needed: Windows has no per-process descriptor table to
/// run out of, so an accept loop never spins on `WSAEMFILE` for long.
#[derive(Debug)]
pub(crate) struct SpareFd;

impl SpareFd {
    pub(crate) fn new() -> Self {
        SpareFd
    }
    /// Nothing held, nothing given up.
    pub(crate) fn release(&mut self) -> bool {
        false
    }
    pub(crate) fn restore(&mut self) {}
}

/// No kernel timer inside the port yet: hosts honour
/// `Reactor::next_deadline()` (the host contract on Windows is "one
/// waitable handle plus the next deadline").
pub(crate) use super::no_timer::TimerFd;

/// The most descriptors sent with one message (none: Windows connections
/// carry no descriptors, and [`crate::fd`]'s types cannot be made here).
pub(crate) const MAX_FDS: usize = 0;

/// A plain send: no descriptor can be passed on Windows.
pub(crate) fn send_with_fds(
    socket: &Socket,
    bufs: &[std::io::IoSlice<'_>],
    _fds: &[crate::fd::BorrowedFd<'_>],
) -> io::Result<usize> {
    socket.send_vectored(bufs)
}

/// A plain receive: no descriptor arrives on Windows.
pub(crate) fn recv_with_fds(
    socket: &Socket,
    buf: &mut [u8],
    _fds: &mut Vec<crate::fd::OwnedFd>,
) -> io::Result<usize> {
    std::io::Read::read(&mut &*socket, buf)
}

/// No socket activation on Windows: none passed.
pub(crate) fn listen_sockets() -> Vec<Socket> {
    Vec::new()
}

/// Whether `socket` is listening (`SO_ACCEPTCONN`).
pub(crate) fn is_listener(socket: &Socket) -> io::Result<bool> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as i32;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let r = unsafe {
        WinSock::getsockopt(
            socket.as_raw_socket() as WinSock::SOCKET,
            WinSock::SOL_SOCKET,
            WinSock::SO_ACCEPTCONN,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value != 0)
}

/// Windows has no load-balancing `SO_REUSEPORT` (its `SO_REUSEADDR` lets
/// a second socket steal the port, which is not the same thing).
pub(crate) fn set_reuse_port(_: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "sharing a port between listeners (SO_REUSEPORT) does not exist on Windows",
    ))
}

/// Whether a non-blocking `connect` is under way rather than failed
/// (`WSAEWOULDBLOCK`, `WSAEINPROGRESS`).
pub(crate) fn is_connect_in_progress(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || matches!(
            e.raw_os_error(),
            Some(WinSock::WSAEINPROGRESS) | Some(WinSock::WSAEWOULDBLOCK)
        )
}

/// polling's IOCP hands registration changes (and level-triggered
/// re-arms) to the kernel only inside `wait`: a dispatch for a host that
/// blocks on the port itself ends with a zero-timeout wait.
pub(crate) const WAIT_SUBMITS_REGISTRATIONS: bool = true;

/// The signal numbers Windows' C runtime uses, for the console events
/// [`SignalPipe`] reports.
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
/// `SIGBREAK` (Ctrl+Break).
const SIGBREAK: i32 = 21;

/// The signals that ask a server to stop: SIGINT (Ctrl+C) and SIGTERM
/// (the console closing, logoff, shutdown).
pub(crate) const STOP_SIGNALS: [i32; 2] = [SIGINT, SIGTERM];

/// Writers of the live [`SignalPipe`]s, by signal, for the console
/// handler (which Windows runs on a thread of its own).
static PIPES: std::sync::Mutex<Vec<(u64, i32, Socket)>> = std::sync::Mutex::new(Vec::new());
static NEXT_PIPE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static HANDLER: std::sync::Once = std::sync::Once::new();

unsafe extern "system" fn console_event(event: u32) -> windows_sys::core::BOOL {
    use windows_sys::Win32::System::Console::{
        CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
    };
    let signal = match event {
        CTRL_C_EVENT => SIGINT,
        CTRL_BREAK_EVENT => SIGBREAK,
        CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => SIGTERM,
        _ => return 0,
    };
    let pipes = PIPES.lock().unwrap_or_else(|p| p.into_inner());
    let mut handled = false;
    for (_, _, write) in pipes.iter().filter(|p| p.1 == signal) {
        // A full pipe already says "it came".
        let _ = write.send(&[1]);
        handled = true;
    }
    // Not handled: Windows' default (the process ends).
    handled.into()
}

/// One signal (a console event: Ctrl+C is SIGINT, Ctrl+Break SIGBREAK,
/// the console closing, logoff and shutdown SIGTERM) routed to a socket
/// the poller watches: a console handler, run by Windows on a thread of
/// its own, writes a byte into a loopback pair, so the signal is handled
/// on the reactor's thread.
pub(crate) struct SignalPipe {
    read: Socket,
    id: u64,
}

impl SignalPipe {
    /// Routes `signal` (SIGINT, SIGTERM or SIGBREAK) to a new pipe.
    pub(crate) fn new(signal: i32) -> io::Result<SignalPipe> {
        if ![SIGINT, SIGTERM, SIGBREAK].contains(&signal) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {signal} cannot be handled on Windows (SIGINT, SIGTERM and SIGBREAK can)"),
            ));
        }
        let (read, write) = loopback_pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut failed = None;
        HANDLER.call_once(|| {
            // SAFETY: installs a handler that only locks a mutex and sends
            // on sockets, which is safe on the thread Windows runs it on.
            if unsafe {
                windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(console_event), 1)
            } == 0
            {
                failed = Some(io::Error::last_os_error());
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let id = NEXT_PIPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PIPES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, signal, write));
        Ok(SignalPipe { read, id })
    }

    /// The socket to watch for reading.
    pub(crate) fn fd(&self) -> &Socket {
        &self.read
    }

    /// Reads what the handler wrote: whether the signal came (once or more)
    /// since the last call.
    pub(crate) fn drain(&self) -> bool {
        super::drain(&self.read)
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        PIPES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p.0 != self.id);
    }
}

/// A connected pair of TCP sockets on the loopback interface.
fn loopback_pair() -> io::Result<(Socket, Socket)> {
    use socket2::{Domain, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(1)?;
    let write = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    write.connect(&listener.local_addr()?)?;
    let (read, _) = listener.accept()?;
    write.set_tcp_nodelay(true)?;
    Ok((read, write))
}
