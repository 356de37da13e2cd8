//! `braid passwd` (feature `cli`): the subcommand's options and its run
//! function, for the `braid` command.

use clap::Args;

/// `braid passwd FILE USER`: adds or changes a user in a password file
/// (or, with a `postgres://` URL for FILE, in that database's
/// `braid_users` table, if the `braid` command was given a way there).
#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// The password file (created with mode 0600 if missing), or a
    /// PostgreSQL URL (postgres://user:pw@host/db) for its `braid_users`
    /// table.
    pub file: std::path::PathBuf,
    /// The user to add or change.
    pub user: String,
}

/// Turns the terminal's echo off; returns what to restore.
#[cfg(unix)]
fn echo_off() -> Option<libc::termios> {
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        libc::tcsetattr(0, libc::TCSANOW, &t);
        Some(saved)
    }
}

#[cfg(unix)]
fn restore_echo(saved: libc::termios) {
    // SAFETY: restores the settings read by `echo_off`.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
}

/// Turns the console's echo off; returns the mode to restore.
#[cfg(windows)]
fn echo_off() -> Option<u32> {
    use windows_sys::Win32::System::Console::{
        GetConsoleMode, GetStdHandle, SetConsoleMode, ENABLE_ECHO_INPUT, STD_INPUT_HANDLE,
    };
    // SAFETY: console calls on this process's standard input handle.
    unsafe {
        let input = GetStdHandle(STD_INPUT_HANDLE);
        let mut mode = 0;
        if GetConsoleMode(input, &mut mode) == 0 {
            return None;
        }
        SetConsoleMode(input, mode & !ENABLE_ECHO_INPUT);
        Some(mode)
    }
}

#[cfg(windows)]
fn restore_echo(mode: u32) {
    use windows_sys::Win32::System::Console::{GetStdHandle, SetConsoleMode, STD_INPUT_HANDLE};
    // SAFETY: restores the mode read by `echo_off`.
    unsafe { SetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), mode) };
}

/// Reads a line from stdin; from a terminal, without echo.
fn read_secret(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut saved = None;
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        saved = echo_off();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(s) = saved {
        restore_echo(s);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Asks for the password (twice on a terminal, without echo; else one line
/// of stdin) and writes its argon2id hash into the file.
///
/// # Errors
///
/// Unreadable input, passwords that differ or are empty, the file's error.
pub fn run(args: PasswdArgs) -> std::io::Result<()> {
    run_with(args, |_url: &str, _user: &str, _password: &str| {
        Err(std::io::Error::other(
            "this build cannot write users to PostgreSQL",
        ))
    })
}

/// A store of users other than a file, given its URL, the user and the
/// password (the `braid` command passes braid-db's, which cred cannot
/// depend on).
pub type UrlStore<'a> = dyn FnOnce(&str, &str, &str) -> std::io::Result<()> + 'a;

/// [`run`], writing to `url_store` when FILE is a `postgres://` (or
/// `postgresql://`) URL.
///
/// # Errors
///
/// As [`run`], or the store's.
pub fn run_with(
    args: PasswdArgs,
    url_store: impl FnOnce(&str, &str, &str) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::IsTerminal;
    let password = read_secret(&format!("New password for {}: ", args.user))?;
    if std::io::stdin().is_terminal() {
        let again = read_secret("Again: ")?;
        if again != password {
            return Err(std::io::Error::other("the passwords differ"));
        }
    }
    if password.is_empty() {
        return Err(std::io::Error::other("an empty password is not allowed"));
    }
    let target = args.file.to_string_lossy();
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        url_store(&target, &args.user, &password)?;
        println!(
            "braid passwd: {} set in PostgreSQL (braid_users)",
            args.user
        );
        return Ok(());
    }
    crate::set_password(&args.file, &args.user, &password)?;
    println!("braid passwd: {} set in {}", args.user, args.file.display());
    Ok(())
}
