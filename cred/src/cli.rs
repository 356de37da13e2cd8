//! `braid passwd` (feature `cli`): the subcommand's options and its run
//! function, for the `braid` command.

use clap::Args;

/// `braid passwd FILE USER`: adds or changes a user in a password file.
#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// The password file (created with mode 0600 if missing).
    pub file: std::path::PathBuf,
    /// The user to add or change.
    pub user: String,
}

/// Reads a line from stdin; from a terminal, without echo.
fn read_secret(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut saved: Option<libc::termios> = None;
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) == 0 {
                saved = Some(t);
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
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
    crate::set_password(&args.file, &args.user, &password)?;
    println!("braid passwd: {} set in {}", args.user, args.file.display());
    Ok(())
}
