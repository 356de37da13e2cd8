//! Plugging the reactor into an event loop braid ships no adapter for: a
//! hand-written `poll(2)` loop that also watches its own fd (stdin here).
//! The whole integration is the `run_loop` function.
//!
//! ```text
//! cargo run --example poll_host       (type lines; each is echoed through
//!                                      a braid TCP echo server and back)
//! ```

// The loop is poll(2)'s, so Unix's; Windows' form (a wait on the
// reactor's completion port with its next deadline) is in
// tests/poll_host.rs.
#[cfg(unix)]
mod poll_loop {
    use std::cell::{Cell, RefCell};
    use std::io::{self, BufRead};
    use std::os::fd::AsRawFd;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use braid::{Address, Budget, HostLoop, Protocol, Reactor, Transport};

    /// The host's side of the contract: be told when the reactor stops.
    struct PollLoop {
        running: Cell<bool>,
    }

    impl HostLoop for PollLoop {
        fn reactor_stopped(&self) {
            self.running.set(false);
        }
    }

    /// An existing loop: polls the reactor's one fd beside its own fds and
    /// dispatches the reactor when that fd is readable.
    fn run_loop(reactor: &Reactor, mut on_stdin: impl FnMut()) -> io::Result<()> {
        let host = Rc::new(PollLoop {
            running: Cell::new(true),
        });
        let _attached = reactor.attach_host(host.clone())?;
        while host.running.get() {
            let mut fds = [
                libc::pollfd {
                    fd: reactor.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: io::stdin().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // With timers in the fd (Linux, macOS, the BSDs) the loop can
            // block indefinitely; elsewhere it also wakes at the
            // reactor's next deadline.
            let timeout = match (reactor.timers_in_fd(), reactor.next_deadline()) {
                (false, Some(d)) => {
                    d.saturating_duration_since(Instant::now())
                        .as_millis()
                        .min(i32::MAX as u128) as i32
                        + 1
                }
                _ => -1,
            };
            // SAFETY: `fds` is a valid array of pollfd for the call's duration.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if fds[0].revents != 0 || !reactor.timers_in_fd() {
                reactor.dispatch(Budget::default());
            }
            if fds[1].revents != 0 {
                on_stdin();
            }
        }
        Ok(())
    }

    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, t: &Transport, d: &[u8]) {
            t.write(d);
        }
    }

    struct Show(Rc<RefCell<Option<Transport>>>);
    impl Protocol for Show {
        fn connection_made(&mut self, t: &Transport) {
            *self.0.borrow_mut() = Some(t.clone());
            println!("connected through the poll loop; type lines (Ctrl-D ends)");
        }
        fn data_received(&mut self, _: &Transport, d: &[u8]) {
            print!("echoed: {}", String::from_utf8_lossy(d));
        }
    }

    pub(crate) fn main() -> io::Result<()> {
        let reactor = Reactor::new()?;
        let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Echo)?;
        let out = Rc::new(RefCell::new(None));
        let o = out.clone();
        reactor.connect_tcp(
            port.local_addr(),
            move |_: &Address| Show(o.clone()),
            Some(Duration::from_secs(5)),
        );
        let r = reactor.clone();
        run_loop(&reactor, move || {
            let mut line = String::new();
            match io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => r.stop(),
                Ok(_) => {
                    if let Some(t) = &*out.borrow() {
                        t.write(line.as_bytes());
                    }
                }
            }
        })
    }
}

#[cfg(unix)]
fn main() -> std::io::Result<()> {
    poll_loop::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("poll_host is the Unix (poll(2)) form; tests/poll_host.rs has Windows'");
}
