//! Maildir delivery: one file per message in each recipient's
//! `<root>/<user>/new/`, written in `tmp/` first and fsynced, with
//! `Return-Path:`, `Delivered-To:` and `Received:` headers added (what
//! Postfix's `local` and `virtual` agents do).
//!
//! Every file operation runs on the reactor's thread pool, so a slow disk
//! never stalls the GUI or the other sessions.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use braid::Reactor;

use crate::reply::Reply;
use crate::server::{Delivery, Envelope, Message, SessionInfo};

/// Bytes gathered before a write to disk.
const FLUSH_AT: usize = 64 * 1024;

/// Delivers mail for local domains into Maildirs under one root
/// (`<root>/<user>/{tmp,new,cur}`). Mail for other domains is refused
/// with `554 5.7.1 Relay access denied`.
///
/// Users are the ones named with [`users`](Self::users), or, if none
/// were, every directory already under the root.
///
/// ```
/// use braid_mail::Maildir;
///
/// let reactor = braid::Reactor::new()?;
/// let dir = std::env::temp_dir().join(format!("braid-maildir-doc-{}", std::process::id()));
/// let maildir = Maildir::new(&reactor, &dir, ["example.org"]).users(["alice", "bob"]);
/// assert!(maildir.is_local("alice@EXAMPLE.org"));
/// assert!(!maildir.is_local("alice@elsewhere.net"));
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug)]
pub struct Maildir {
    reactor: Reactor,
    root: PathBuf,
    domains: HashSet<String>,
    users: Option<HashSet<String>>,
    hostname: String,
    fsync: bool,
}

impl Maildir {
    /// Maildirs under `root` for mail to `domains`.
    pub fn new<S: AsRef<str>>(
        reactor: &Reactor,
        root: impl AsRef<Path>,
        domains: impl IntoIterator<Item = S>,
    ) -> Maildir {
        Maildir {
            reactor: reactor.clone(),
            root: root.as_ref().to_owned(),
            domains: domains
                .into_iter()
                .map(|d| d.as_ref().to_ascii_lowercase())
                .collect(),
            users: None,
            hostname: "localhost".into(),
            fsync: true,
        }
    }

    /// Only these users have mailboxes (their directories are made on
    /// first delivery).
    pub fn users<S: AsRef<str>>(mut self, users: impl IntoIterator<Item = S>) -> Self {
        self.users = Some(
            users
                .into_iter()
                .map(|u| u.as_ref().to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// The name in `Received:` headers and file names.
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = name.to_owned();
        self
    }

    /// Whether each message is fsynced (file and directory) before it is
    /// acknowledged (default: yes). Off only where durability does not
    /// matter (tests, tmpfs, benchmarks that show the cost of fsync).
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Whether `address` is in one of the local domains.
    pub fn is_local(&self, address: &str) -> bool {
        split(address).is_some_and(|(_, d)| self.domains.contains(&d))
    }

    /// The mailbox directory for a local `address`, if it has one.
    pub fn mailbox(&self, address: &str) -> Option<PathBuf> {
        let (user, domain) = split(address)?;
        if !self.domains.contains(&domain) || !safe_user(&user) {
            return None;
        }
        let path = self.root.join(&user);
        let known = match &self.users {
            Some(users) => users.contains(&user),
            None => path.is_dir(),
        };
        known.then_some(path)
    }

    /// The reactor whose thread pool does the file work.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// A `Received:` header (CRLF-ended, folded) for a message from the
    /// session `info` describes, naming `rcpt` if given.
    pub fn received_header(&self, info: &SessionInfo, rcpt: Option<&str>) -> String {
        self.received_header_with_id(info, rcpt, &self.unique_name())
    }

    fn received_header_with_id(&self, info: &SessionInfo, rcpt: Option<&str>, id: &str) -> String {
        let with = match (info.esmtp, info.tls, info.authenticated.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, true, true) => "ESMTPSA",
        };
        let date = mail_builder::headers::date::Date::now().to_rfc822();
        let helo = info.helo.as_deref().unwrap_or("unknown");
        // The address without its port, as Postfix writes it.
        let peer = info
            .peer
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| info.peer.clone());
        let host = &self.hostname;
        let rcpt = rcpt.map(|r| format!("\r\n\tfor <{r}>")).unwrap_or_default();
        format!("Received: from {helo} ([{peer}])\r\n\tby {host} (braid) with {with} id {id}{rcpt}; {date}\r\n")
    }

    fn unique_name(&self) -> String {
        // One counter for the process: several reactors (workers) each
        // with a Maildir of their own write into the same directories.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}.M{}P{}Q{}.{}",
            t.as_secs(),
            t.subsec_micros(),
            pid(),
            n,
            self.hostname
        )
    }
}

/// This process's id, asked once.
fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// `user@domain`, lower-cased.
fn split(address: &str) -> Option<(String, String)> {
    let (u, d) = address.rsplit_once('@')?;
    (!u.is_empty() && !d.is_empty()).then(|| (u.to_ascii_lowercase(), d.to_ascii_lowercase()))
}

/// A user name that is safe as one path component.
fn safe_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && !u.starts_with('.')
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

impl Delivery for Maildir {
    type Message = MaildirMessage;

    async fn rcpt_to(&self, _: &SessionInfo, _: &Envelope, to: &str) -> Result<(), Reply> {
        if !self.is_local(to) {
            return Err(Reply::new(
                554,
                [5, 7, 1],
                format!("<{to}>: Relay access denied"),
            ));
        }
        match self.mailbox(to) {
            Some(_) => Ok(()),
            None => Err(Reply::new(
                550,
                [5, 1, 1],
                format!(
                    "<{to}>: Recipient address rejected: User unknown in local recipient table"
                ),
            )),
        }
    }

    async fn begin(&self, info: &SessionInfo, env: &Envelope) -> Result<MaildirMessage, Reply> {
        let id = self.unique_name();
        // One file per mailbox, whatever the number of its addresses.
        let mut boxes: BTreeMap<PathBuf, String> = BTreeMap::new();
        for to in &env.to {
            if let Some(path) = self.mailbox(to) {
                boxes.entry(path).or_insert_with(|| to.clone());
            }
        }
        let from = env.from.clone();
        let jobs: Vec<(PathBuf, Vec<u8>)> = boxes
            .into_iter()
            .map(|(path, rcpt)| {
                let head = format!(
                    "Return-Path: <{from}>\r\nDelivered-To: {rcpt}\r\n{}",
                    self.received_header_with_id(info, Some(&rcpt), &id)
                );
                (path, head.into_bytes())
            })
            .collect();
        let name = id.clone();
        let opened = self
            .reactor
            .defer_to_thread(move || -> io::Result<Vec<Tmp>> {
                let mut out = Vec::new();
                for (dir, head) in jobs {
                    let tmp = dir.join("tmp").join(&name);
                    let open = || OpenOptions::new().write(true).create_new(true).open(&tmp);
                    // The mailbox is made on its first delivery only: one
                    // system call per message otherwise. tmp/ last, so
                    // that a tmp/ another delivery finds has its new/.
                    let mut file = match open() {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            for sub in ["new", "cur", "tmp"] {
                                fs::create_dir_all(dir.join(sub))?;
                            }
                            open()?
                        }
                        r => r?,
                    };
                    file.write_all(&head)?;
                    out.push(Tmp { file, tmp, dir });
                }
                Ok(out)
            })
            .await;
        match opened {
            Ok(Ok(files)) => Ok(MaildirMessage {
                fsync: self.fsync,
                reactor: self.reactor.clone(),
                id,
                files: Some(files),
                buf: Vec::new(),
            }),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "maildir: cannot create message file");
                Err(write_error())
            }
            Err(_) => Err(write_error()),
        }
    }
}

fn write_error() -> Reply {
    Reply::new(451, [4, 3, 0], "Error: queue file write error")
}

#[derive(Debug)]
struct Tmp {
    file: File,
    tmp: PathBuf,
    dir: PathBuf,
}

/// A message on its way into Maildirs: see [`Maildir`].
#[derive(Debug)]
pub struct MaildirMessage {
    fsync: bool,
    reactor: Reactor,
    id: String,
    /// Away on the thread pool while a write runs.
    files: Option<Vec<Tmp>>,
    buf: Vec<u8>,
}

impl MaildirMessage {
    async fn flush(&mut self, then_commit: bool) -> Result<(), Reply> {
        let mut files = self.files.take().ok_or_else(write_error)?;
        let buf = std::mem::take(&mut self.buf);
        let id = self.id.clone();
        let fsync = self.fsync;
        let done = self
            .reactor
            .defer_to_thread(move || {
                let r = (|| -> io::Result<()> {
                    for f in files.iter_mut() {
                        f.file.write_all(&buf)?;
                    }
                    if then_commit {
                        for f in files.iter_mut() {
                            if fsync {
                                f.file.sync_all()?;
                            }
                            let new = f.dir.join("new").join(&id);
                            fs::rename(&f.tmp, &new)?;
                            if fsync {
                                File::open(f.dir.join("new"))?.sync_all()?;
                            }
                        }
                    }
                    Ok(())
                })();
                (files, r)
            })
            .await;
        match done {
            Ok((files, Ok(()))) => {
                self.files = Some(files);
                Ok(())
            }
            Ok((files, Err(e))) => {
                tracing::error!(error = %e, "maildir: write failed");
                self.files = Some(files);
                Err(write_error())
            }
            Err(_) => Err(write_error()),
        }
    }
}

impl Message for MaildirMessage {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= FLUSH_AT {
            self.flush(false).await?;
        }
        Ok(())
    }

    async fn commit(mut self) -> Result<String, Reply> {
        match self.flush(true).await {
            Ok(()) => {
                self.files = None;
                Ok(std::mem::take(&mut self.id))
            }
            Err(r) => {
                self.remove_tmp();
                Err(r)
            }
        }
    }

    fn abort(mut self) {
        self.remove_tmp();
    }
}

impl MaildirMessage {
    fn remove_tmp(&mut self) {
        if let Some(files) = self.files.take() {
            drop(self.reactor.defer_to_thread(move || {
                for f in files {
                    let _ = fs::remove_file(&f.tmp);
                }
            }));
        }
    }
}

impl Drop for MaildirMessage {
    fn drop(&mut self) {
        self.remove_tmp();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_are_existing_directories_or_named_users_and_never_escape() {
        let reactor = Reactor::new().unwrap();
        let root = std::env::temp_dir().join(format!("braid-maildir-unit-{}", pid()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("carol")).unwrap();
        let by_dirs = Maildir::new(&reactor, &root, ["Example.ORG"]);
        assert_eq!(
            by_dirs.mailbox("Carol@example.org"),
            Some(root.join("carol"))
        );
        assert_eq!(by_dirs.mailbox("dave@example.org"), None);
        assert_eq!(by_dirs.mailbox("carol@other.org"), None);
        for evil in [
            "../etc@example.org",
            ".hidden@example.org",
            "a/b@example.org",
            "@example.org",
        ] {
            assert_eq!(by_dirs.mailbox(evil), None, "{evil}");
        }
        let named = Maildir::new(&reactor, &root, ["example.org"]).users(["dave"]);
        assert_eq!(named.mailbox("dave@example.org"), Some(root.join("dave")));
        assert_eq!(named.mailbox("carol@example.org"), None);
        let _ = fs::remove_dir_all(&root);
    }
}
