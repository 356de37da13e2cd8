//! # braid-cred
//!
//! ```text
//!   credentials ──▶ Portal ──▶ Checker(s) ──▶ avatar id ──▶ Realm ──▶ avatar
//!   (password,      throttle   in memory, argon2 file,     (your app's
//!    challenge)     per peer   shared password, anonymous  user object)
//! ```
//!
//! Authentication for braid, as Twisted's `twisted.cred`: a [`Portal`] turns
//! [`Credentials`] into an avatar. Its [`Checker`]s decide who the
//! credentials belong to; its [`Realm`] makes that user's avatar (and
//! says how to log it out).
//!
//! Every failure is the one [`Unauthorized`] error, whatever the cause
//! (unknown user, wrong password, unsupported credentials, throttled), so
//! a client learns nothing from which it was. Password comparisons are
//! constant-time; password files hold argon2id hashes and are checked on
//! the reactor's thread pool (argon2 is slow on purpose). A peer that
//! fails [`MAX_FAILURES`] times in a row is refused without a check for
//! [`BLOCK_FOR`].
//!
//! ```
//! use braid_cred::{Credentials, InMemoryChecker, Portal};
//! use braid::Reactor;
//!
//! let reactor = Reactor::new()?;
//! let portal = Portal::new(&reactor, |user: &str, _mind: ()| {
//!     (format!("avatar of {user}"), None)
//! })
//! .checker(InMemoryChecker::new().user("alice", "secret"));
//! let login = portal.login(
//!     Credentials::password("alice", "secret"),
//!     (),
//!     "127.0.0.1",
//! );
//! # let _ = login;
//! # std::io::Result::Ok(())
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "cli")]
pub mod cli;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use blake2::{Blake2s256, Digest};
use subtle::ConstantTimeEq;

use braid::Deferred;
use braid::Reactor;

/// Consecutive failures from one peer before it is refused for a while.
pub const MAX_FAILURES: u32 = 5;
/// How long a peer that failed too often is refused.
pub const BLOCK_FOR: Duration = Duration::from_secs(30);

/// Who a checker says the credentials belong to.
pub type AvatarId = String;

/// What a client presents.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// No identity (Twisted's `Anonymous`).
    Anonymous,
    /// A user name and password in clear (send it only over TLS).
    UsernamePassword {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// Proof that the client knows a password it did not send (Twisted's
    /// `IUsernameHashedPassword`): a challenge-response, checked against
    /// the stored password by the [`PasswordProof`]. Only checkers that
    /// hold passwords (not hashes) can check it: [`InMemoryChecker`].
    /// Perspective Broker's MD5 challenge (in `braid-pb`) is one.
    HashedPassword {
        /// The user.
        username: String,
        /// Checks the client's answer against a password.
        proof: PasswordProof,
    },
    /// A public key the client proved it holds the private half of
    /// (Twisted's `SSHPrivateKey`): the protocol checked the signature
    /// before asking, so a checker only decides whether this key may log
    /// in as this user (an `authorized_keys` file, a database).
    PublicKey {
        /// The user.
        username: String,
        /// The key in SSH wire form (RFC 4253 6.6: the algorithm name,
        /// then its parameters), as in `authorized_keys` after base64.
        blob: Vec<u8>,
    },
}

/// Checks a challenge-response against a stored password: given the
/// password, says whether the client's answer proves it. Made by the
/// protocol that sent the challenge; it must compare in constant time.
///
/// ```
/// use braid_cred::PasswordProof;
/// let proof = PasswordProof::new(|password| password == b"secret");
/// assert!(proof.check_password(b"secret"));
/// assert!(!proof.check_password(b"guess"));
/// ```
#[derive(Clone)]
pub struct PasswordProof(Rc<ProofCheck>);

/// What a [`PasswordProof`] runs: the stored password in, the verdict out.
type ProofCheck = dyn Fn(&[u8]) -> bool;

impl PasswordProof {
    /// A proof checked by `check`.
    pub fn new(check: impl Fn(&[u8]) -> bool + 'static) -> Self {
        PasswordProof(Rc::new(check))
    }

    /// Whether the client's answer proves `password` (Twisted's
    /// `checkPassword`).
    #[doc(alias = "checkPassword")]
    pub fn check_password(&self, password: &[u8]) -> bool {
        (self.0)(password)
    }
}

impl fmt::Debug for PasswordProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordProof(***)")
    }
}

impl Credentials {
    /// A user name and password.
    pub fn password(username: &str, password: &str) -> Credentials {
        Credentials::UsernamePassword {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    /// The user name, unless anonymous.
    pub fn username(&self) -> Option<&str> {
        match self {
            Credentials::Anonymous => None,
            Credentials::UsernamePassword { username, .. }
            | Credentials::HashedPassword { username, .. }
            | Credentials::PublicKey { username, .. } => Some(username),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password or the response.
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::UsernamePassword { username, .. } => {
                write!(f, "UsernamePassword({username:?}, ***)")
            }
            Credentials::HashedPassword { username, .. } => {
                write!(f, "HashedPassword({username:?}, ***)")
            }
            Credentials::PublicKey { username, blob } => {
                write!(f, "PublicKey({username:?}, {} bytes)", blob.len())
            }
        }
    }
}

/// The one login failure (Twisted's `UnauthorizedLogin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unauthorized;

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unauthorized")
    }
}

impl std::error::Error for Unauthorized {}

impl From<braid::Failure> for Unauthorized {
    fn from(_: braid::Failure) -> Unauthorized {
        Unauthorized
    }
}

/// Decides whose credentials these are (Twisted's
/// `ICredentialsChecker`). Credentials a checker does not handle are
/// [`Unauthorized`] for it.
pub trait Checker: 'static {
    /// The avatar id the credentials prove, or [`Unauthorized`].
    fn check(
        &self,
        reactor: &Reactor,
        credentials: &Credentials,
    ) -> Deferred<AvatarId, Unauthorized>;
}

/// Equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Fixed-length digests, so the lengths leak nothing either.
    let (da, db) = (Blake2s256::digest(a), Blake2s256::digest(b));
    bool::from(da.ct_eq(&db)) & (a.len() == b.len())
}

/// Users and passwords held in memory (Twisted's
/// `InMemoryUsernamePasswordDatabaseDontUse`, and needed for
/// challenge-responses such as PB's, which must know the password).
#[derive(Clone, Default)]
pub struct InMemoryChecker {
    users: HashMap<String, String>,
}

impl fmt::Debug for InMemoryChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.users.keys().collect();
        names.sort();
        f.debug_struct("InMemoryChecker")
            .field("users", &names)
            .finish()
    }
}

impl InMemoryChecker {
    /// No users.
    pub fn new() -> Self {
        InMemoryChecker::default()
    }

    /// Adds a user.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.insert(name.to_owned(), password.to_owned());
        self
    }

    fn verify(&self, c: &Credentials) -> Result<AvatarId, Unauthorized> {
        // An unknown user costs the same comparison as a known one.
        let stored = |u: &str| {
            self.users
                .get(u)
                .map(String::as_bytes)
                .unwrap_or(b"\0unknown")
        };
        match c {
            Credentials::UsernamePassword { username, password } => {
                let ok = constant_time_eq(stored(username), password.as_bytes());
                (ok && self.users.contains_key(username))
                    .then(|| username.clone())
                    .ok_or(Unauthorized)
            }
            Credentials::HashedPassword { username, proof } => {
                let ok = proof.check_password(stored(username));
                (ok && self.users.contains_key(username))
                    .then(|| username.clone())
                    .ok_or(Unauthorized)
            }
            Credentials::Anonymous | Credentials::PublicKey { .. } => Err(Unauthorized),
        }
    }
}

impl Checker for InMemoryChecker {
    fn check(&self, _: &Reactor, c: &Credentials) -> Deferred<AvatarId, Unauthorized> {
        match self.verify(c) {
            Ok(id) => Deferred::succeed(id),
            Err(e) => Deferred::fail(e),
        }
    }
}

/// One password for every user name (an IRC server's `PASS`): the avatar
/// id is the user name given.
#[derive(Clone)]
pub struct SharedPasswordChecker {
    password: String,
}

impl fmt::Debug for SharedPasswordChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedPasswordChecker(***)")
    }
}

impl SharedPasswordChecker {
    /// Accepts `password` with any user name.
    pub fn new(password: &str) -> Self {
        SharedPasswordChecker {
            password: password.to_owned(),
        }
    }
}

impl Checker for SharedPasswordChecker {
    fn check(&self, _: &Reactor, c: &Credentials) -> Deferred<AvatarId, Unauthorized> {
        match c {
            Credentials::UsernamePassword { username, password }
                if constant_time_eq(self.password.as_bytes(), password.as_bytes()) =>
            {
                Deferred::succeed(username.clone())
            }
            _ => Deferred::fail(Unauthorized),
        }
    }
}

/// Lets anonymous credentials in, as the avatar id `"anonymous"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnonymousChecker;

impl Checker for AnonymousChecker {
    fn check(&self, _: &Reactor, c: &Credentials) -> Deferred<AvatarId, Unauthorized> {
        match c {
            Credentials::Anonymous => Deferred::succeed("anonymous".to_owned()),
            _ => Deferred::fail(Unauthorized),
        }
    }
}

/// A file of `user:argon2-hash` lines (`braid passwd FILE USER` writes
/// them). Read at every check, so changes apply at once; verified on the
/// reactor's thread pool. Checks user names and passwords only: it
/// cannot check a challenge-response ([`Credentials::HashedPassword`]),
/// which needs the password itself.
#[derive(Clone, Debug)]
pub struct PasswordFileChecker {
    path: PathBuf,
}

impl PasswordFileChecker {
    /// Checks against the file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        PasswordFileChecker {
            path: path.as_ref().to_path_buf(),
        }
    }
}

/// A hash that verifies nothing, checked for unknown users so that they
/// take as long as known ones.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$YnJhaWRkdW1teXNhbHQ$0mN2hbl8H4dZcE9rLhm6X5ZHPfLPq9DCWhOpGdK3h6s";

/// Whether `password` matches `hash` (a PHC string, as `braid passwd`
/// writes: argon2id). `None` checks against a hash that matches nothing,
/// for a user that does not exist, so that it takes as long as one that
/// does. CPU-heavy by design (tens of milliseconds): call it off the
/// reactor thread (`defer_to_thread`), as the checkers here do.
pub fn verify_password_hash(hash: Option<&str>, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let known = hash.is_some();
    let ok = match PasswordHash::new(hash.unwrap_or(DUMMY_HASH)) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    };
    ok && known
}

/// `password` hashed for storing: argon2id with a fresh salt, as a PHC
/// string (what `braid passwd` writes; [`verify_password_hash`] checks it).
/// CPU-heavy: off the reactor thread.
///
/// # Errors
///
/// The hasher's (it does not fail on ordinary input).
pub fn hash_password(password: &str) -> io::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use rand_core::OsRng;
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| io::Error::other(e.to_string()))?
        .to_string())
}

fn verify_in_file(path: &Path, user: &str, password: &str) -> Result<bool, io::Error> {
    let text = std::fs::read_to_string(path)?;
    let stored = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .find(|(u, _)| *u == user)
        .map(|(_, h)| h.trim().to_owned());
    Ok(verify_password_hash(stored.as_deref(), password))
}

impl Checker for PasswordFileChecker {
    fn check(&self, reactor: &Reactor, c: &Credentials) -> Deferred<AvatarId, Unauthorized> {
        let Credentials::UsernamePassword { username, password } = c else {
            return Deferred::fail(Unauthorized);
        };
        let (path, user, pw) = (self.path.clone(), username.clone(), password.clone());
        reactor
            .defer_to_thread(move || verify_in_file(&path, &user, &pw).map(|ok| (ok, user)))
            .add_callbacks(
                |r| match r {
                    Ok((true, user)) => Ok(user),
                    Ok((false, _)) => Err(Unauthorized),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the password file");
                        Err(Unauthorized)
                    }
                },
                |_| Err(Unauthorized),
            )
    }
}

/// Adds or changes `user`'s password in the file at `path` (created with
/// mode 0600 if missing), as an argon2id hash. The file is replaced
/// atomically.
///
/// # Errors
///
/// `InvalidInput` for a user name with `:` or white space, or an empty
/// one; the file system's errors.
pub fn set_password(path: impl AsRef<Path>, user: &str, password: &str) -> io::Result<()> {
    if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a user name must be non-empty, without ':' or white space",
        ));
    }
    let path = path.as_ref();
    let hash = hash_password(password)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut out = String::new();
    let mut replaced = false;
    for line in old.lines() {
        match line.split_once(':') {
            Some((u, _)) if u == user && !line.starts_with('#') => {
                out.push_str(&format!("{user}:{hash}\n"));
                replaced = true;
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if !replaced {
        out.push_str(&format!("{user}:{hash}\n"));
    }
    write_private_file(path, out.as_bytes())
}

/// Replaces `path` with `contents`, readable by its owner only (mode
/// 0600), all at once: written to a hidden file beside it, flushed to disk,
/// then renamed over it, so a crash or a reader never sees half a file.
/// What a password file or a private key is written with.
///
/// # Errors
///
/// If the directory cannot be written, or the disk fails.
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
///
/// let dir = std::env::temp_dir().join(format!("braid-cred-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("secret");
/// braid_cred::write_private_file(&path, b"s3cret\n")?;
/// assert_eq!(std::fs::read(&path)?, b"s3cret\n");
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
/// # std::fs::remove_dir_all(&dir)?;
/// # std::io::Result::Ok(())
/// ```
pub fn write_private_file(path: impl AsRef<Path>, contents: &[u8]) -> io::Result<()> {
    let path = path.as_ref();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("private"),
        std::process::id()
    ));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // Owner only. (On Windows the file takes its directory's ACL.)
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Makes the avatar for an authenticated user (Twisted's `IRealm`):
/// returns it and, optionally, what to run at logout.
pub trait Realm<A, M>: 'static {
    /// The avatar for `id`, given the client's `mind`.
    fn request_avatar(&self, id: &str, mind: M) -> (A, Option<Box<dyn FnOnce()>>);
}

impl<A, M, F> Realm<A, M> for F
where
    F: Fn(&str, M) -> (A, Option<Box<dyn FnOnce()>>) + 'static,
{
    fn request_avatar(&self, id: &str, mind: M) -> (A, Option<Box<dyn FnOnce()>>) {
        self(id, mind)
    }
}

/// A successful login: the avatar, and its logout.
pub struct LoggedIn<A> {
    /// Who logged in.
    pub avatar_id: AvatarId,
    /// Their avatar.
    pub avatar: A,
    /// Run when the session ends.
    pub logout: Option<Box<dyn FnOnce()>>,
}

impl<A: fmt::Debug> fmt::Debug for LoggedIn<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggedIn")
            .field("avatar_id", &self.avatar_id)
            .field("avatar", &self.avatar)
            .finish()
    }
}

#[derive(Default)]
struct Throttle {
    /// Per peer: consecutive failures and, once blocked, until when.
    peers: HashMap<String, (u32, Option<Instant>)>,
}

/// Turns credentials into avatars (Twisted's `Portal`). Clone freely.
pub struct Portal<A, M> {
    inner: Rc<PortalInner<A, M>>,
}

struct PortalInner<A, M> {
    reactor: Reactor,
    realm: Box<dyn Realm<A, M>>,
    checkers: Vec<Rc<dyn Checker>>,
    throttle: RefCell<Throttle>,
}

impl<A, M> Clone for Portal<A, M> {
    fn clone(&self) -> Self {
        Portal {
            inner: self.inner.clone(),
        }
    }
}

impl<A, M> fmt::Debug for Portal<A, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Portal")
            .field("checkers", &self.inner.checkers.len())
            .finish()
    }
}

impl<A: 'static, M: 'static> Portal<A, M> {
    /// A portal over `realm`, with no checkers yet.
    pub fn new(reactor: &Reactor, realm: impl Realm<A, M>) -> Self {
        Portal {
            inner: Rc::new(PortalInner {
                reactor: reactor.clone(),
                realm: Box::new(realm),
                checkers: Vec::new(),
                throttle: RefCell::default(),
            }),
        }
    }

    /// Adds a checker; checkers are tried in order until one accepts.
    ///
    /// # Panics
    ///
    /// If the portal was already cloned (add checkers first).
    pub fn checker(mut self, c: impl Checker) -> Self {
        Rc::get_mut(&mut self.inner)
            .expect("add checkers before cloning the portal")
            .checkers
            .push(Rc::new(c));
        self
    }

    /// Whether `peer` is refused for now after repeated failures.
    pub fn is_blocked(&self, peer: &str) -> bool {
        let now = self.inner.reactor.now();
        let t = self.inner.throttle.borrow();
        matches!(t.peers.get(peer), Some((_, Some(until))) if *until > now)
    }

    /// Logs in: the first checker that accepts the credentials names the
    /// avatar id, and the realm makes the avatar for `mind`. `peer` (an
    /// address) is what failures are counted by.
    pub fn login(
        &self,
        credentials: Credentials,
        mind: M,
        peer: &str,
    ) -> Deferred<LoggedIn<A>, Unauthorized> {
        if self.is_blocked(peer) {
            tracing::info!(peer, "login refused: too many failures");
            return Deferred::fail(Unauthorized);
        }
        let me = self.clone();
        let peer = peer.to_owned();
        self.try_checker(0, credentials).add_both(move |r| match r {
            Ok(id) => {
                me.inner.throttle.borrow_mut().peers.remove(&peer);
                let (avatar, logout) = me.inner.realm.request_avatar(&id, mind);
                Ok(LoggedIn {
                    avatar_id: id,
                    avatar,
                    logout,
                })
            }
            Err(e) => {
                me.failed(&peer);
                Err(e)
            }
        })
    }

    fn failed(&self, peer: &str) {
        let now = self.inner.reactor.now();
        let mut t = self.inner.throttle.borrow_mut();
        let entry = t.peers.entry(peer.to_owned()).or_insert((0, None));
        if entry.1.is_some_and(|until| until <= now) {
            *entry = (0, None);
        }
        entry.0 += 1;
        if entry.0 >= MAX_FAILURES {
            entry.1 = Some(now + BLOCK_FOR);
            tracing::warn!(
                peer,
                failures = entry.0,
                "login failures: refusing this peer for a while"
            );
        }
    }

    fn try_checker(&self, i: usize, c: Credentials) -> Deferred<AvatarId, Unauthorized> {
        let Some(checker) = self.inner.checkers.get(i).cloned() else {
            return Deferred::fail(Unauthorized);
        };
        let me = self.clone();
        checker
            .check(&self.inner.reactor, &c)
            .add_both_deferred(move |r| match r {
                Ok(id) => Deferred::succeed(id),
                Err(_) => me.try_checker(i + 1, c),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid::testing::FakeClock;

    fn outcome<T: 'static>(
        d: Deferred<T, Unauthorized>,
    ) -> Rc<RefCell<Option<Result<T, Unauthorized>>>> {
        let out = Rc::new(RefCell::new(None));
        let o = out.clone();
        d.add_both(move |r| {
            *o.borrow_mut() = Some(r);
            Ok::<(), Unauthorized>(())
        });
        out
    }

    #[test]
    fn in_memory_anonymous_and_one_error_for_every_failure() {
        let reactor = Reactor::with_clock(FakeClock::new()).unwrap();
        let portal = Portal::new(&reactor, |id: &str, mind: u32| {
            (format!("{id}/{mind}"), None)
        })
        .checker(InMemoryChecker::new().user("alice", "secret"))
        .checker(AnonymousChecker);
        let ok = outcome(portal.login(Credentials::password("alice", "secret"), 7, "a"));
        assert_eq!(
            ok.borrow().as_ref().unwrap().as_ref().unwrap().avatar,
            "alice/7"
        );
        let anon = outcome(portal.login(Credentials::Anonymous, 1, "a"));
        assert_eq!(
            anon.borrow().as_ref().unwrap().as_ref().unwrap().avatar_id,
            "anonymous"
        );
        for bad in [
            Credentials::password("alice", "wrong"),
            Credentials::password("mallory", "secret"),
            Credentials::password("alice", ""),
        ] {
            let r = outcome(portal.login(bad, 0, "b"));
            assert_eq!(
                r.borrow().as_ref().unwrap().as_ref().unwrap_err(),
                &Unauthorized
            );
        }
        let good = Credentials::HashedPassword {
            username: "alice".into(),
            proof: PasswordProof::new(|p| constant_time_eq(p, b"secret")),
        };
        let wrong = Credentials::HashedPassword {
            username: "alice".into(),
            proof: PasswordProof::new(|p| constant_time_eq(p, b"guess")),
        };
        assert!(outcome(portal.login(wrong, 0, "c"))
            .borrow()
            .as_ref()
            .unwrap()
            .is_err());
        assert!(outcome(portal.login(good, 0, "c"))
            .borrow()
            .as_ref()
            .unwrap()
            .is_ok());
    }

    #[test]
    fn repeated_failures_are_throttled_then_forgiven() {
        let clock = FakeClock::new();
        let reactor = Reactor::with_clock(clock.clone()).unwrap();
        let portal = Portal::new(&reactor, |id: &str, _: ()| (id.to_owned(), None))
            .checker(InMemoryChecker::new().user("alice", "secret"));
        for _ in 0..MAX_FAILURES {
            drop(portal.login(Credentials::password("alice", "guess"), (), "10.0.0.9"));
        }
        assert!(portal.is_blocked("10.0.0.9"));
        assert!(
            !portal.is_blocked("10.0.0.10"),
            "other peers are not affected"
        );
        // Even the right password is refused while blocked.
        let r = outcome(portal.login(Credentials::password("alice", "secret"), (), "10.0.0.9"));
        assert!(r.borrow().as_ref().unwrap().is_err());
        clock.advance(BLOCK_FOR + Duration::from_secs(1));
        let r = outcome(portal.login(Credentials::password("alice", "secret"), (), "10.0.0.9"));
        assert!(r.borrow().as_ref().unwrap().is_ok());
    }

    #[test]
    fn password_files_hold_argon2_hashes() {
        let dir = std::env::temp_dir().join(format!("braid-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("passwd");
        set_password(&file, "alice", "first").unwrap();
        set_password(&file, "bob", "builder").unwrap();
        set_password(&file, "alice", "second").unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("alice:$argon2id$"));
        assert!(!text.contains("second"), "no clear-text password");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(verify_in_file(&file, "alice", "second").unwrap());
        assert!(!verify_in_file(&file, "alice", "first").unwrap());
        assert!(verify_in_file(&file, "bob", "builder").unwrap());
        assert!(!verify_in_file(&file, "carol", "builder").unwrap());
        assert!(set_password(&file, "a:b", "x").is_err());
        // Through a portal, on the thread pool.
        let reactor = Reactor::new().unwrap();
        let portal = Portal::new(&reactor, |id: &str, _: ()| (id.to_owned(), None))
            .checker(PasswordFileChecker::new(&file));
        let good = outcome(portal.login(Credentials::password("bob", "builder"), (), "p"));
        let bad = outcome(portal.login(Credentials::password("bob", "nope"), (), "p"));
        braid::testing::run_until(&reactor, Duration::from_secs(30), || {
            good.borrow().is_some() && bad.borrow().is_some()
        })
        .unwrap();
        assert!(good.borrow().as_ref().unwrap().is_ok());
        assert!(bad.borrow().as_ref().unwrap().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
