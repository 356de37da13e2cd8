//! Unix backend of [`crate::sys`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use socket2::{SockAddr, Socket};

/// The raw form of what the poller registers: a descriptor.
pub(crate) type RawSource = RawFd;
/// The borrowed form of what the poller registers: a descriptor.
pub(crate) type BorrowedSource<'a> = BorrowedFd<'a>;

/// What the poller can watch, as a raw and a borrowed source.
pub(crate) trait AsSource {
    /// The raw descriptor, for `Poller::add`.
    fn raw_source(&self) -> RawSource;
    /// The borrowed descriptor, for `Poller::modify`/`delete`.
    fn source(&self) -> BorrowedSource<'_>;
}

impl<T: AsFd> AsSource for T {
    fn raw_source(&self) -> RawSource {
        self.as_fd().as_raw_fd()
    }
    fn source(&self) -> BorrowedSource<'_> {
        self.as_fd()
    }
}

/// A socket address as braid names it: an IP address, or a Unix path.
pub(crate) fn address_of(a: &SockAddr) -> crate::transport::Address {
    match a.as_socket() {
        Some(ip) => crate::transport::Address::Tcp(ip),
        None => crate::transport::Address::Unix(a.as_pathname().map(std::path::Path::to_path_buf)),
    }
}

/// Lets other sockets bind the same UDP port, for multicast
/// (`SO_REUSEADDR` and `SO_REUSEPORT`).
pub(crate) fn share_datagram_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)
}

/// epoll and kqueue take registration changes at once: no closing wait.
pub(crate) const WAIT_SUBMITS_REGISTRATIONS: bool = false;

/// Whether a datagram socket's error is an earlier datagram refused (an
/// ICMP port unreachable): `ECONNREFUSED`.
pub(crate) fn is_datagram_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionRefused
}

/// Flags for every send: `MSG_NOSIGNAL` where it exists. Apple platforms
/// have no such flag and use `SO_NOSIGPIPE` in [`prepare_stream`] instead.
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(any(target_os = "macos", target_os = "ios"))]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// Makes a stream socket non-blocking and SIGPIPE-safe.
pub(crate) fn prepare_stream(socket: &Socket) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    socket.set_nosigpipe(true)?;
    Ok(())
}

/// Accepts one connection as a non-blocking, close-on-exec socket.
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let (s, a) = listener.accept()?;
        prepare_stream(&s)?;
        Ok((s, a))
    }
}

/// True for the errors that mean "no file descriptor left".
/// glibc keeps freed memory for reuse, and returns only the top of its
/// heap by itself: after many connections close, the holes they leave stay
/// resident. `malloc_trim(0)` gives back every free page.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// A descriptor held in reserve so that an accept loop can still take (and
/// close) a waiting connection when the process runs out of descriptors;
/// otherwise a level-triggered listener would spin. Twisted does the same.
#[derive(Debug)]
pub(crate) struct SpareFd(Option<OwnedFd>);

impl SpareFd {
    pub(crate) fn new() -> Self {
        SpareFd(open_dev_null())
    }
    /// Gives the spare up so that one `accept` can succeed.
    pub(crate) fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
    /// Takes the spare back once the emergency is over.
    pub(crate) fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = open_dev_null();
        }
    }
}

fn open_dev_null() -> Option<OwnedFd> {
    // SAFETY: a constant, NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The most descriptors sent or received with one message.
pub(crate) const MAX_FDS: usize = 64;

/// `sendmsg` with `fds` as `SCM_RIGHTS` ancillary data.
pub(crate) fn send_with_fds(
    socket: &Socket,
    bufs: &[std::io::IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    let fds: Vec<libc::c_int> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let bytes = std::mem::size_of_val(fds.as_slice()) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec; // IoSlice is an iovec
    msg.msg_iovlen = bufs.len() as _;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer holds CMSG_SPACE(bytes) bytes, aligned
        // for cmsghdr, so the first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                bytes as usize,
            );
        }
    }
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, SEND_FLAGS) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `recvmsg` that also collects `SCM_RIGHTS` descriptors (close-on-exec)
/// into `fds`. Descriptors beyond the control buffer are closed by the
/// kernel and the message is flagged truncated, which is reported.
pub(crate) fn recv_with_fds(
    socket: &Socket,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let bytes = (MAX_FDS * std::mem::size_of::<libc::c_int>()) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let flags = libc::MSG_CMSG_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let flags = 0;
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled msg's control buffer; walking it with the
    // CMSG macros stays inside msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                let count = len / std::mem::size_of::<libc::c_int>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        tracing::warn!("a message carried more than {MAX_FDS} descriptors; the rest were closed");
    }
    Ok(n as usize)
}

/// `read(2)` on a descriptor (pipes, terminals, files).
pub(crate) fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: read into a buffer we own from a descriptor we borrow.
    cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `writev(2)` on a descriptor (pipes, terminals, files).
pub(crate) fn writev_fd(fd: BorrowedFd<'_>, bufs: &[std::io::IoSlice<'_>]) -> io::Result<usize> {
    let n = bufs.len().min(1024) as libc::c_int;
    // SAFETY: IoSlice is an iovec; the slices outlive the call.
    cvt(unsafe { libc::writev(fd.as_raw_fd(), bufs.as_ptr().cast(), n) })
}

fn cvt(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sets or clears `O_NONBLOCK`; returns whether it was set.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<bool> {
    // SAFETY: fcntl on a descriptor we borrow.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let was = flags & libc::O_NONBLOCK != 0;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if new != flags && unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(was)
}

/// Whether the peer of a pipe's write end has closed it (an error or a
/// hang-up is pending), without waiting.
pub(crate) fn write_end_hung_up(fd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, without waiting.
    unsafe { libc::poll(&mut p, 1, 0) };
    p.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// Points `fd` (0 or 1) at `/dev/null`, so the number stays taken.
pub(crate) fn point_at_dev_null(fd: RawFd) {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        // SAFETY: dup2 onto one of our own standard descriptors.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

/// A descriptor the poller always sees readable: stands in for a regular
/// file, which epoll refuses (`EPERM`) and which is always ready. An
/// eventfd holding 1 on Linux; elsewhere the read end of a pipe holding
/// one byte that nobody reads.
#[cfg(target_os = "linux")]
pub(crate) fn always_ready_fd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd returns a new descriptor we own.
    let efd = unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(efd) })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn always_ready_fd() -> io::Result<OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe(2) fills two descriptors we then own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read, &write] {
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: writes one byte from a local into the pipe we own.
    if unsafe { libc::write(write.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
        return Err(io::Error::last_os_error());
    }
    Ok(read)
}

/// Whether `socket` is listening (`SO_ACCEPTCONN`).
pub(crate) fn is_listener(socket: &Socket) -> io::Result<bool> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value != 0)
}

/// Whether `e` is the poller refusing a descriptor that is always ready
/// (a regular file).
pub(crate) fn is_unpollable(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPERM)
}

/// Sends `signal` to a child: through its pidfd when there is one (no race
/// with pid reuse), else `kill(2)` on its (unreaped) pid.
pub(crate) fn signal_process(
    pid: u32,
    pidfd: Option<BorrowedFd<'_>>,
    signal: i32,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(fd) = pidfd {
        // SAFETY: pidfd_send_signal with a live pidfd, no siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        return if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pidfd;
    // SAFETY: kill(2) on our own unreaped child's pid.
    let r = unsafe { libc::kill(pid as libc::pid_t, signal) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lets several sockets listen on one port with the kernel spreading the
/// connections between them: `SO_REUSEPORT` on Linux (hash-balanced
/// since 3.9), `SO_REUSEPORT_LB` on FreeBSD (plain `SO_REUSEPORT` there
/// only lets the last one get connections).
pub(crate) fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    #[cfg(target_os = "freebsd")]
    {
        let on: libc::c_int = 1;
        // SAFETY: a valid fd and a pointer to an int of the size given.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEPORT_LB,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "freebsd"))]
    socket.set_reuse_port(true)
}

/// The listening sockets systemd passed (socket activation,
/// `sd_listen_fds(3)`): `LISTEN_FDS` descriptors from 3, if `LISTEN_PID`
/// is this process. The variables are removed so that children do not
/// take the sockets for theirs; the descriptors are made close-on-exec.
pub(crate) fn listen_fds() -> Vec<OwnedFd> {
    let n = listen_fds_count(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    );
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    (0..n)
        .filter_map(|i| {
            let fd = 3 + i as i32;
            // SAFETY: systemd handed these descriptors to this process
            // (LISTEN_PID says so) and nothing else owns them; one that is
            // not open (a wrong LISTEN_FDS) is skipped, not owned.
            unsafe {
                if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) != 0 {
                    return None;
                }
                Some(OwnedFd::from_raw_fd(fd))
            }
        })
        .collect()
}

/// [`listen_fds`] as sockets.
pub(crate) fn listen_sockets() -> Vec<Socket> {
    listen_fds().into_iter().map(Socket::from).collect()
}

/// How many descriptors `LISTEN_PID`/`LISTEN_FDS` give `pid` (0 if they
/// are for another process, missing or malformed).
pub(crate) fn listen_fds_count(pid: Option<&str>, fds: Option<&str>, me: u32) -> usize {
    match (
        pid.and_then(|p| p.parse::<u32>().ok()),
        fds.and_then(|f| f.parse::<usize>().ok()),
    ) {
        (Some(p), Some(n)) if p == me => n.min(1024),
        _ => 0,
    }
}

/// The signals that ask a server to stop: SIGINT and SIGTERM.
pub(crate) const STOP_SIGNALS: [i32; 2] = [libc::SIGINT, libc::SIGTERM];

/// `SIGKILL`, for `Process::kill`.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// Whether a non-blocking `connect` is under way rather than failed.
pub(crate) fn is_connect_in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock
}

/// One signal routed to a descriptor the poller can watch: signal-hook's
/// self-pipe (its handler writes a byte, which is async-signal-safe), so
/// the signal is handled on the reactor's thread whichever thread the
/// kernel interrupted.
pub(crate) struct SignalPipe {
    read: std::os::unix::net::UnixStream,
    /// The handler's registration, which owns the write end.
    id: signal_hook::SigId,
}

impl SignalPipe {
    /// Routes `signal` to a new pipe.
    pub(crate) fn new(signal: i32) -> io::Result<SignalPipe> {
        if signal_hook::consts::FORBIDDEN.contains(&signal) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {signal} cannot be handled"),
            ));
        }
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        // The registration takes the write end and closes it when dropped.
        let id = signal_hook::low_level::pipe::register(signal, write)?;
        Ok(SignalPipe { read, id })
    }

    /// The descriptor to watch for reading.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Reads what the handler wrote: whether the signal came (once or more)
    /// since the last call.
    pub(crate) fn drain(&self) -> bool {
        super::drain(&self.read)
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

/// Unix platforms with neither timerfd nor kqueue: hosts honour
/// `Reactor::next_deadline()`, and a child's exit is found by polling.
#[cfg(not(any(target_os = "linux", kqueue)))]
pub(crate) use super::no_timer::TimerFd;

#[cfg(not(any(target_os = "linux", kqueue)))]
pub(crate) fn process_fd(_: u32) -> io::Result<OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}
