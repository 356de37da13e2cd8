//! [`ProcessAvatar`]: sessions run as processes of the server's own user,
//! on a real pseudo-terminal when the client asked for one. Unix only:
//! braid's processes and pseudo-terminals are.

use std::cell::RefCell;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::rc::Rc;

use braid::process::{Process, ProcessProtocol};
use braid::{CloseReason, PauseReading, Producer, Protocol, Transport};

use crate::channel::{ExitReport, SessionChannel};
use crate::pty::Pty;
use crate::session::Avatar;

/// Runs commands and shells as processes of the server's own user
/// (Twisted's `conch` with its one Unix avatar): `exec` runs
/// `$SHELL -c COMMAND`, `shell` runs the shell as a login shell, each on
/// a pseudo-terminal if the client asked for one (resized on
/// `window-change`), else on pipes with stderr apart. The exit status
/// (or the signal) goes back to the client.
#[derive(Clone, Debug)]
pub struct ProcessAvatar {
    shell: String,
    env: Vec<(String, String)>,
    sftp_root: Option<std::path::PathBuf>,
}

impl Default for ProcessAvatar {
    fn default() -> Self {
        ProcessAvatar::new()
    }
}

impl ProcessAvatar {
    /// Commands through `/bin/sh`.
    pub fn new() -> Self {
        ProcessAvatar {
            shell: "/bin/sh".into(),
            env: Vec::new(),
            sftp_root: None,
        }
    }

    /// Commands and shells through `shell` instead.
    pub fn with_shell(mut self, shell: impl Into<String>) -> Self {
        self.shell = shell.into();
        self
    }

    /// Serves the `sftp` subsystem (so `sftp` and `scp`) over `root`,
    /// which clients see as `/`.
    pub fn sftp_root(mut self, root: impl Into<std::path::PathBuf>) -> Self {
        self.sftp_root = Some(root.into());
        self
    }

    /// Sets `name=value` in every session's environment.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    fn command(&self, channel: &SessionChannel, args: &[&str]) -> Command {
        let mut c = Command::new(&self.shell);
        c.args(args);
        let user = channel.username();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
        c.current_dir(&home)
            .env("USER", &user)
            .env("LOGNAME", &user)
            .env("SHELL", &self.shell)
            .env("HOME", &home);
        if let Some(pty) = channel.pty() {
            c.env("TERM", pty.term);
        }
        for (k, v) in self.env.iter().cloned().chain(channel.env()) {
            c.env(k, v);
        }
        c
    }
}

impl Avatar for ProcessAvatar {
    fn exec(&self, channel: &SessionChannel, command: &str) -> Option<Box<dyn Protocol>> {
        Some(Box::new(ProcessSession::new(
            self.command(channel, &["-c", command]),
        )))
    }

    fn subsystem(&self, _: &SessionChannel, name: &str) -> Option<Box<dyn Protocol>> {
        match (name, &self.sftp_root) {
            ("sftp", Some(root)) => Some(Box::new(crate::SftpServer::new(root.clone()))),
            _ => None,
        }
    }

    /// As sshd's `AllowTcpForwarding yes`.
    fn allow_direct_tcpip(&self, _: &str, _: u16) -> bool {
        true
    }

    /// As sshd's `AllowTcpForwarding yes` with `GatewayPorts no`.
    fn allow_remote_forward(&self, _: &str, _: u16) -> bool {
        true
    }

    fn shell(&self, channel: &SessionChannel) -> Option<Box<dyn Protocol>> {
        let mut c = self.command(channel, &[]);
        if channel.pty().is_some() {
            c.arg("-i");
        }
        Some(Box::new(ProcessSession::new(c)))
    }
}

/// A process started when the channel opens, bridged to it: channel data
/// to stdin (EOF closes it), stdout and stderr to the channel, its exit
/// as `exit-status` or `exit-signal`. On a pseudo-terminal when the
/// channel asked for one.
pub struct ProcessSession {
    command: Option<Command>,
    stdin: Rc<RefCell<Option<Stdin>>>,
}

impl std::fmt::Debug for ProcessSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSession").finish_non_exhaustive()
    }
}

/// Where channel data goes.
enum Stdin {
    Pipe(Process),
    Pty(Transport),
}

impl ProcessSession {
    /// Runs `command` on the channel it is started on.
    pub fn new(command: Command) -> Self {
        ProcessSession {
            command: Some(command),
            stdin: Rc::default(),
        }
    }
}

/// A channel's end of the process: output to it, exit reported on it.
struct ToChannel {
    channel: Transport,
}

impl ToChannel {
    fn exited(&self, status: ExitStatus) {
        if let Some(ch) = self.channel.layer::<SessionChannel>() {
            ch.set_exit(exit_report(status));
        }
    }
}

/// A process's end as `exit-status` or `exit-signal`.
pub(crate) fn exit_report(status: ExitStatus) -> ExitReport {
    if let Some(sig) = status.signal() {
        ExitReport::Signal {
            name: signal_name(sig).to_owned(),
            core_dumped: status.core_dumped(),
            message: String::new(),
        }
    } else {
        ExitReport::Status(status.code().unwrap_or(255) as u32)
    }
}

/// RFC 4254 6.10's names (without "SIG").
pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "ABRT",
        libc::SIGALRM => "ALRM",
        libc::SIGFPE => "FPE",
        libc::SIGHUP => "HUP",
        libc::SIGILL => "ILL",
        libc::SIGINT => "INT",
        libc::SIGKILL => "KILL",
        libc::SIGPIPE => "PIPE",
        libc::SIGQUIT => "QUIT",
        libc::SIGSEGV => "SEGV",
        libc::SIGTERM => "TERM",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        _ => "UNKNOWN",
    }
}

/// The signal for a name of RFC 4254 6.9.
pub(crate) fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "ABRT" => libc::SIGABRT,
        "ALRM" => libc::SIGALRM,
        "FPE" => libc::SIGFPE,
        "HUP" => libc::SIGHUP,
        "ILL" => libc::SIGILL,
        "INT" => libc::SIGINT,
        "KILL" => libc::SIGKILL,
        "PIPE" => libc::SIGPIPE,
        "QUIT" => libc::SIGQUIT,
        "SEGV" => libc::SIGSEGV,
        "TERM" => libc::SIGTERM,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        _ => return None,
    })
}

/// Pauses the process's output while the channel's queue is full.
struct PauseProcess(Process);

impl Producer for PauseProcess {
    fn pause_producing(&self) {
        self.0.pause_reading();
    }
    fn resume_producing(&self) {
        self.0.resume_reading();
    }
    fn stop_producing(&self) {}
}

impl ProcessProtocol for ToChannel {
    fn out_received(&mut self, _: &Process, data: &[u8]) {
        self.channel.write(data);
    }
    fn err_received(&mut self, _: &Process, data: &[u8]) {
        if let Some(ch) = self.channel.layer::<SessionChannel>() {
            ch.write_stderr(data);
        }
    }
    fn process_ended(&mut self, _: &Process, status: ExitStatus) {
        self.exited(status);
        self.channel.lose_connection();
    }
}

impl Protocol for ProcessSession {
    fn connection_made(&mut self, t: &Transport) {
        let Some(mut command) = self.command.take() else {
            return;
        };
        let Some(reactor) = t.reactor() else {
            return;
        };
        let channel = t.layer::<SessionChannel>();
        let pty = channel.as_ref().and_then(|c| c.pty());
        let started = match pty {
            Some(req) => Pty::spawn(&reactor, &mut command, req.size, t.clone()).map(|pty| {
                if let Some(ch) = &channel {
                    let resize = pty.clone();
                    ch.on_window_change(move |size| resize.resize(size));
                    let sig = pty.process();
                    ch.on_signal(move |name| {
                        if let Some(n) = signal_number(name) {
                            let _ = sig.signal(n);
                        }
                    });
                }
                Stdin::Pty(pty.master())
            }),
            None => reactor
                .spawn_process(&mut command, ToChannel { channel: t.clone() })
                .map(|p| {
                    let _ = t.register_producer(Rc::new(PauseProcess(p.clone())), true);
                    if let Some(stdin) = p.stdin() {
                        let _ = stdin.register_producer(Rc::new(PauseReading(t.clone())), true);
                    }
                    if let Some(ch) = &channel {
                        let sig = p.clone();
                        ch.on_signal(move |name| {
                            if let Some(n) = signal_number(name) {
                                let _ = sig.signal(n);
                            }
                        });
                    }
                    Stdin::Pipe(p)
                }),
        };
        match started {
            Ok(s) => *self.stdin.borrow_mut() = Some(s),
            Err(e) => {
                tracing::info!(error = %e, "session command failed to start");
                if let Some(ch) = &channel {
                    ch.write_stderr(
                        format!("braid-ssh: cannot start the command: {e}\r\n").as_bytes(),
                    );
                    ch.set_exit(ExitReport::Status(127));
                }
                t.lose_connection();
            }
        }
    }

    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        match self.stdin.borrow().as_ref() {
            Some(Stdin::Pipe(p)) => p.write(data),
            Some(Stdin::Pty(m)) => m.write(data),
            None => {}
        }
    }

    fn read_eof(&mut self, _: &Transport) {
        // The client's stdin ended; the command goes on, its output too.
        match self.stdin.borrow().as_ref() {
            Some(Stdin::Pipe(p)) => p.close_stdin(),
            // A terminal has no half-close (sshd does the same): what
            // the user typed (^D) is what ends a shell.
            Some(Stdin::Pty(_)) | None => {}
        }
    }

    fn connection_lost(&mut self, _: &CloseReason) {
        // The client went away: hang the command up, as sshd does.
        match self.stdin.borrow_mut().take() {
            Some(Stdin::Pipe(p)) if p.is_running() => {
                let _ = p.signal(libc::SIGHUP);
            }
            Some(Stdin::Pipe(_)) => {}
            Some(Stdin::Pty(m)) => m.lose_connection(),
            None => {}
        }
    }
}
