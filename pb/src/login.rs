//! Logging in over PB (spec section 4): Twisted's MD5 challenge-response
//! and anonymous login, and a stronger path for braid peers.
//!
//! **The MD5 scheme is weak.** The server must keep passwords it can
//! compute `MD5(password)` from, and anyone who sees one exchange can try
//! passwords offline against it. It exists because Twisted peers
//! (Buildbot workers among them) speak it; run it over TLS, and prefer
//! [`login_password`] between braid peers: the password travels over TLS
//! and is checked against an argon2 password file
//! ([`PasswordFileChecker`](braid_cred::PasswordFileChecker)).

use std::cell::{Cell, RefCell};

use rand_core::{OsRng, RngCore};

use super::broker::{Args, Broker, Caller, LocalObject, Referenceable, RemoteReference, Reply};
use super::object::ObjectBuilder;
use super::{Object, PbError, Value};
use braid::Address;
use braid::Deferred;
use braid_cred::{Credentials, LoggedIn, PasswordProof, Portal, Unauthorized};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// A portal whose avatars are PB objects and whose minds are what the
/// client passed (None, or a remote reference to its own object).
pub type PbPortal = Portal<LocalObject, Value>;

/// An avatar handed to one login: its methods are the realm's object's;
/// its logout runs when the peer lets go of it or the connection ends.
struct Avatar {
    inner: LocalObject,
    logout: RefCell<Option<Box<dyn FnOnce()>>>,
}

impl Avatar {
    fn log_out(&self) {
        let logout = self.logout.borrow_mut().take();
        if let Some(f) = logout {
            f();
        }
    }
}

impl Referenceable for Avatar {
    fn call(&self, caller: &Caller, name: &str, args: Args) -> Reply {
        self.inner.0.call(caller, name, args)
    }
    fn released(&self, _: &Broker) {
        self.log_out();
    }
}

impl Drop for Avatar {
    fn drop(&mut self) {
        // Never sent (the connection went first): still logged out.
        self.log_out();
    }
}

fn avatar_value(r: Result<LoggedIn<LocalObject>, Unauthorized>) -> Result<Value, PbError> {
    match r {
        Ok(l) => Ok(Value::Object(LocalObject::new(Avatar {
            inner: l.avatar,
            logout: RefCell::new(l.logout),
        }))),
        Err(_) => Err(PbError::unauthorized()),
    }
}

/// Failures are counted per host, not per connection.
fn peer_key(caller: &Caller) -> String {
    match caller.broker().peer() {
        Some(Address::Tcp(a)) => a.ip().to_string(),
        Some(other) => other.to_string(),
        None => "unknown".into(),
    }
}

fn text_arg(v: &Value) -> Option<String> {
    match v {
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// A random challenge, as opaque to clients as Twisted's.
fn challenge() -> Vec<u8> {
    let mut c = vec![0u8; 16];
    OsRng.fill_bytes(&mut c);
    c
}

/// The login surface of a PB root (Twisted's `_PortalWrapper`), added to
/// an application's root object so that one root serves both.
///
/// ```
/// use braid_cred::{AnonymousChecker, InMemoryChecker, Portal};
/// use braid_pb::{LoginRoot, Object, Value};
/// use braid::Reactor;
///
/// let reactor = Reactor::new()?;
/// let portal = Portal::new(&reactor, |user: &str, _mind: Value| {
///     let name = user.to_owned();
///     let avatar = Object::builder()
///         .method("whoami", move |_, _| Ok(Value::str(&name)))
///         .build();
///     (avatar, None)
/// })
/// .checker(InMemoryChecker::new().user("alice", "secret"))
/// .checker(AnonymousChecker);
/// let root = LoginRoot::new(portal)
///     .add_to(Object::builder().method("echo", |_, a| Ok(a.require(0, "x")?.clone())))
///     .build();
/// # let _ = root;
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Debug)]
pub struct LoginRoot {
    portal: PbPortal,
    clear_without_tls: bool,
}

impl LoginRoot {
    /// Logins through `portal`.
    pub fn new(portal: PbPortal) -> Self {
        LoginRoot {
            portal,
            clear_without_tls: false,
        }
    }

    /// Accepts `loginPassword` on connections without TLS (for tests and
    /// trusted networks; the password then crosses in clear).
    pub fn allow_password_without_tls(mut self, yes: bool) -> Self {
        self.clear_without_tls = yes;
        self
    }

    /// Adds `login` (Twisted's challenge-response), `loginAnonymous`, and
    /// braid's `loginPassword` to `builder`.
    pub fn add_to(self, builder: ObjectBuilder) -> ObjectBuilder {
        let portal = self.portal.clone();
        let builder = builder.method("login", move |caller, args| {
            let user = text_arg(args.require(0, "username")?)
                .ok_or_else(|| PbError::new("builtins.TypeError", "username must be a string"))?;
            let challenge = challenge();
            let used = Cell::new(false);
            let portal = portal.clone();
            let chal = challenge.clone();
            let peer = peer_key(caller);
            let challenger = Object::builder()
                .deferred_method("respond", move |_, args| {
                    if used.replace(true) {
                        return Deferred::fail(PbError::unauthorized());
                    }
                    let response = match args.get(0, "response") {
                        Some(Value::Bytes(b)) => b.clone(),
                        _ => return Deferred::fail(PbError::unauthorized()),
                    };
                    let mind = args.get(1, "mind").cloned().unwrap_or(Value::None);
                    let chal = chal.clone();
                    let creds = Credentials::HashedPassword {
                        username: user.clone(),
                        proof: PasswordProof::new(move |password| {
                            let want = md5_response(password, &chal);
                            bool::from(want.ct_eq(response.as_slice()))
                        }),
                    };
                    portal.login(creds, mind, &peer).add_both(avatar_value)
                })
                .build();
            Ok(Value::Tuple(vec![
                Value::Bytes(challenge),
                Value::Object(challenger),
            ]))
        });
        let portal = self.portal.clone();
        let builder = builder.deferred_method("loginAnonymous", move |caller, args| {
            let mind = args.get(0, "mind").cloned().unwrap_or(Value::None);
            portal
                .login(Credentials::Anonymous, mind, &peer_key(caller))
                .add_both(avatar_value)
        });
        let portal = self.portal.clone();
        let clear_ok = self.clear_without_tls;
        builder.deferred_method("loginPassword", move |caller, args| {
            if !clear_ok && !over_tls(caller) {
                tracing::warn!("loginPassword refused: the connection is not TLS");
                return Deferred::fail(PbError::unauthorized());
            }
            let (Some(user), Some(pw)) = (
                args.get(0, "username").and_then(text_arg),
                args.get(1, "password").and_then(text_arg),
            ) else {
                return Deferred::fail(PbError::unauthorized());
            };
            let mind = args.get(2, "mind").cloned().unwrap_or(Value::None);
            portal
                .login(Credentials::password(&user, &pw), mind, &peer_key(caller))
                .add_both(avatar_value)
        })
    }
}

/// The connection is secured by a layer whose handshake is done (TLS).
fn over_tls(caller: &Caller) -> bool {
    caller.broker().transport().is_some_and(|t| t.is_secure())
}

fn avatar_of(v: Value) -> Result<RemoteReference, PbError> {
    v.as_remote()
        .cloned()
        .ok_or_else(|| PbError::new("twisted.spread.pb.Error", "the login gave no avatar"))
}

/// Logs in with Twisted's challenge-response (`PBClientFactory.login`
/// with `UsernamePassword`): the avatar's reference, or
/// `UnauthorizedLogin`. `mind` is passed to the server's realm (None, or
/// a [`Value::Object`] of ours for it to call).
pub fn login(
    root: &RemoteReference,
    username: &str,
    password: &str,
    mind: Value,
) -> Deferred<RemoteReference, PbError> {
    let password = password.as_bytes().to_vec();
    root.call_remote("login", Args::new(vec![Value::bytes(username)]))
        .add_callback_deferred(move |answer| {
            let parts = answer.as_seq().unwrap_or(&[]);
            let (Some(Value::Bytes(challenge)), Some(Value::Remote(challenger))) =
                (parts.first(), parts.get(1))
            else {
                return Deferred::fail(PbError::new(
                    "twisted.spread.pb.Error",
                    "login answered something other than a challenge",
                ));
            };
            let response = md5_response(&password, challenge);
            // The challenger proxy is dropped (and decref'd) after this.
            challenger.call_remote("respond", Args::new(vec![Value::bytes(response), mind]))
        })
        .add_callback_result(avatar_of)
}

/// `MD5(MD5(password) ‖ challenge)`: the answer to PB's login challenge
/// (spec section 4).
pub fn md5_response(password: &[u8], challenge: &[u8]) -> [u8; 16] {
    let inner = Md5::digest(password);
    let mut h = Md5::new();
    h.update(inner);
    h.update(challenge);
    h.finalize().into()
}

/// Logs in anonymously (`loginAnonymous`).
pub fn login_anonymous(root: &RemoteReference, mind: Value) -> Deferred<RemoteReference, PbError> {
    root.call_remote("loginAnonymous", Args::new(vec![mind]))
        .add_callback_result(avatar_of)
}

/// braid's stronger login: the password itself, over TLS, checked by the
/// server against its password file (`loginPassword`; Twisted servers do
/// not have it).
pub fn login_password(
    root: &RemoteReference,
    username: &str,
    password: &str,
    mind: Value,
) -> Deferred<RemoteReference, PbError> {
    root.call_remote(
        "loginPassword",
        Args::new(vec![Value::str(username), Value::str(password), mind]),
    )
    .add_callback_result(avatar_of)
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5_response_matches_the_spec_example() {
        let challenge = [
            0x37, 0x1e, 0xf6, 0xec, 0x12, 0xcd, 0x2b, 0x66, 0xb8, 0x8b, 0xd9, 0x7d, 0x99, 0x35,
            0x58, 0xf6,
        ];
        let want = [
            0x1c, 0xfb, 0x9d, 0xa0, 0xcd, 0x60, 0x19, 0x5a, 0xac, 0xb4, 0x0a, 0xda, 0x18, 0x9c,
            0x91, 0x8a,
        ];
        assert_eq!(super::md5_response(b"secret", &challenge), want);
    }
}
