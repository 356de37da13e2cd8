//! Keys in OpenSSH's files: host keys (`ssh_host_ed25519_key`, made and
//! saved on first start when missing) and `authorized_keys` as a cred
//! checker.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use braid::{Deferred, Reactor};
use braid_cred::{AvatarId, Checker, Credentials, Unauthorized};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};
use sunset::SignKey;

/// A server's host key (ed25519).
pub struct HostKey {
    key: SignKey,
    public: PublicKey,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKey({})", self.fingerprint())
    }
}

fn invalid(what: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl HostKey {
    /// A new random ed25519 key.
    ///
    /// # Errors
    ///
    /// The system's random source failed.
    pub fn generate() -> io::Result<HostKey> {
        let key = SignKey::generate(sunset::KeyType::Ed25519, None).map_err(invalid)?;
        let SignKey::Ed25519(k) = &key else {
            return Err(invalid("not an ed25519 key"));
        };
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&k.to_bytes());
        let public = PrivateKey::from(pair).public_key().clone();
        Ok(HostKey { key, public })
    }

    /// A key from an OpenSSH private key file's text (`-----BEGIN
    /// OPENSSH PRIVATE KEY-----`, unencrypted, ed25519).
    ///
    /// # Errors
    ///
    /// `InvalidData`: not such a key, encrypted, or another algorithm.
    pub fn from_openssh(text: &str) -> io::Result<HostKey> {
        let private = PrivateKey::from_openssh(text).map_err(invalid)?;
        if private.is_encrypted() {
            return Err(invalid(
                "the host key is encrypted (a host key has no passphrase)",
            ));
        }
        let public = private.public_key().clone();
        let key = SignKey::try_from(private).map_err(|e| {
            invalid(format!(
                "host key algorithm not supported ({e}); use ed25519"
            ))
        })?;
        Ok(HostKey { key, public })
    }

    /// Reads the key at `path`; if there is no file, makes one and saves
    /// it there (mode 0600) with its `.pub` beside it, as `ssh-keygen -A`
    /// would.
    ///
    /// # Errors
    ///
    /// The file cannot be read or written, or holds no usable key.
    pub fn load_or_generate(path: impl AsRef<Path>) -> io::Result<HostKey> {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => HostKey::from_openssh(&text)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = HostKey::generate()?;
                key.save(path)?;
                tracing::info!(path = %path.display(), fingerprint = %key.fingerprint(), "made a new host key");
                Ok(key)
            }
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the key to `path` (mode 0600) and its public half to
    /// `path.pub`.
    ///
    /// # Errors
    ///
    /// The files cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let SignKey::Ed25519(k) = &self.key else {
            return Err(invalid("only ed25519 keys are saved"));
        };
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&k.to_bytes());
        let text = PrivateKey::from(pair)
            .to_openssh(LineEnding::LF)
            .map_err(invalid)?;
        braid_cred::write_private_file(path, text.as_bytes())?;
        let mut pubpath = path.as_os_str().to_owned();
        pubpath.push(".pub");
        std::fs::write(PathBuf::from(pubpath), self.public_openssh() + "\n")
    }

    /// The public key as an `authorized_keys`/`known_hosts` line's key
    /// part (`ssh-ed25519 AAAA...`).
    pub fn public_openssh(&self) -> String {
        self.public.to_openssh().unwrap_or_default()
    }

    /// The SHA-256 fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint(HashAlg::Sha256).to_string()
    }

    pub(crate) fn sign_key(&self) -> &SignKey {
        &self.key
    }
}

/// Public-key logins from OpenSSH `authorized_keys` files (Twisted's
/// `SSHPublicKeyChecker` over an `AuthorizedKeysFilesMapping`): one file
/// for every user of a list, or a directory with a file per user. The
/// files are read at each login, so edits apply at once. Options before
/// a key (`from=`, `command=`, `restrict`) are not honoured: a line with
/// options is skipped, never given more than it asked.
#[derive(Clone, Debug)]
pub struct AuthorizedKeysChecker {
    source: KeysSource,
}

#[derive(Clone, Debug)]
enum KeysSource {
    /// One file whose keys log in as any of these users (any user if
    /// `None`).
    File(PathBuf, Option<Vec<String>>),
    /// One file whose keys log in as any user named in a `braid passwd`
    /// file (read at each login).
    FileForUsersIn(PathBuf, PathBuf),
    /// `dir/<user>`.
    Dir(PathBuf),
}

impl AuthorizedKeysChecker {
    /// The keys in `path` log in as any user in `users`.
    pub fn file(path: impl Into<PathBuf>, users: Vec<String>) -> Self {
        AuthorizedKeysChecker {
            source: KeysSource::File(path.into(), Some(users)),
        }
    }

    /// The keys in `path` log in as any user name at all (for a server
    /// whose sessions do not depend on the name).
    pub fn file_for_anyone(path: impl Into<PathBuf>) -> Self {
        AuthorizedKeysChecker {
            source: KeysSource::File(path.into(), None),
        }
    }

    /// The keys in `path` log in as any user named in the `braid passwd`
    /// file `users` (`user:hash` lines, read at each login, so a user
    /// removed there is refused here too).
    pub fn file_for_users_in(path: impl Into<PathBuf>, users: impl Into<PathBuf>) -> Self {
        AuthorizedKeysChecker {
            source: KeysSource::FileForUsersIn(path.into(), users.into()),
        }
    }

    /// `dir/<user>` holds each user's keys.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        AuthorizedKeysChecker {
            source: KeysSource::Dir(dir.into()),
        }
    }

    fn path_for(&self, user: &str) -> Option<PathBuf> {
        match &self.source {
            KeysSource::File(p, None) => Some(p.clone()),
            KeysSource::File(p, Some(users)) => users.iter().any(|u| u == user).then(|| p.clone()),
            KeysSource::FileForUsersIn(p, users) => {
                let text = std::fs::read_to_string(users).ok()?;
                text.lines()
                    .filter_map(|l| l.split_once(':'))
                    .any(|(u, _)| !user.is_empty() && u == user)
                    .then(|| p.clone())
            }
            KeysSource::Dir(d) => {
                let ok = !user.is_empty()
                    && user != "."
                    && user != ".."
                    && !user.contains('/')
                    && !user.contains('\0');
                ok.then(|| d.join(user))
            }
        }
    }

    /// Whether `blob` (a key in wire form) is listed for `user`.
    pub fn is_authorized(&self, user: &str, blob: &[u8]) -> bool {
        let Some(path) = self.path_for(user) else {
            return false;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return false;
        };
        authorized_keys_contain(&text, blob)
    }
}

/// Whether an `authorized_keys` text lists the key `blob` (lines with
/// options are skipped).
pub(crate) fn authorized_keys_contain(text: &str, blob: &[u8]) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return false;
        }
        let mut words = line.split_whitespace();
        let (Some(alg), Some(b64)) = (words.next(), words.next()) else {
            return false;
        };
        if !alg.starts_with("ssh-") && !alg.starts_with("ecdsa-") && !alg.starts_with("sk-") {
            return false;
        }
        PublicKey::from_openssh(&format!("{alg} {b64}"))
            .ok()
            .and_then(|k| k.to_bytes().ok())
            .is_some_and(|b| b == blob)
    })
}

impl Checker for AuthorizedKeysChecker {
    fn check(&self, _: &Reactor, c: &Credentials) -> Deferred<AvatarId, Unauthorized> {
        match c {
            Credentials::PublicKey { username, blob } if self.is_authorized(username, blob) => {
                Deferred::succeed(username.clone())
            }
            _ => Deferred::fail(Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_saves_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("braid-ssh-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("host_key");
        let _ = std::fs::remove_file(&path);
        let made = HostKey::load_or_generate(&path).unwrap();
        let again = HostKey::load_or_generate(&path).unwrap();
        assert_eq!(made.fingerprint(), again.fingerprint());
        assert!(made.fingerprint().starts_with("SHA256:"));
        let public = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let e = HostKey::from_openssh("not a key").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn authorized_keys_match_by_blob_and_skip_options() {
        let key = HostKey::generate().unwrap();
        let line = key.public_openssh();
        let blob = PublicKey::from_openssh(&line).unwrap().to_bytes().unwrap();
        let other = HostKey::generate().unwrap().public_openssh();
        assert!(authorized_keys_contain(
            &format!("# me\n{other}\n{line} me@host\n"),
            &blob
        ));
        assert!(!authorized_keys_contain(&format!("{other}\n"), &blob));
        assert!(!authorized_keys_contain(
            &format!("command=\"ls\" {line}\n"),
            &blob
        ));
        assert!(!authorized_keys_contain(
            "ssh-ed25519 !!!not-base64\n",
            &blob
        ));
    }

    #[test]
    fn a_directory_checker_refuses_names_that_leave_it() {
        let c = AuthorizedKeysChecker::dir("/etc");
        for bad in ["", ".", "..", "../passwd", "a/b"] {
            assert!(c.path_for(bad).is_none(), "{bad}");
        }
        assert_eq!(c.path_for("alice"), Some(PathBuf::from("/etc/alice")));
    }
}
