//! `/~user/`: [`UserDirectory`] (Twisted's `UserDirectory`).

use super::*;

/// Finds a user's home directory.
type UserDatabase = dyn Fn(&str) -> Option<PathBuf>;

/// Where a user's publisher listens.
#[derive(Clone, Debug)]
enum SocketPlace {
    /// This name in the user's home directory.
    InHome(String),
    /// A path with `{user}` in it.
    Template(String),
}

/// `/~user/` for every user of the system (Twisted's `UserDirectory`):
/// served by the user's own publisher when its socket exists
/// (`~user/.braid-web.sock`, or a configured path), else from
/// `~user/public_html` with the front's own permissions, else `404`.
///
/// Mount it as a fallback so that it sees the `~user` segment:
/// `Tree::new().fallback(UserDirectory::new(&reactor))`.
pub struct UserDirectory {
    reactor: Reactor,
    socket: SocketPlace,
    public_html: String,
    config: SubscriptionConfig,
    subs: RefCell<HashMap<PathBuf, Rc<Subscription>>>,
    rest: Option<Rc<dyn Resource>>,
    homes: Box<UserDatabase>,
}

/// The socket a user's publisher listens on, in their home directory.
pub const USER_SOCKET: &str = ".braid-web.sock";

impl UserDirectory {
    /// Users' sites at their `~/.braid-web.sock` or `~/public_html`.
    pub fn new(reactor: &Reactor) -> UserDirectory {
        UserDirectory {
            reactor: reactor.clone(),
            socket: SocketPlace::InHome(USER_SOCKET.to_owned()),
            public_html: "public_html".to_owned(),
            config: SubscriptionConfig::default(),
            subs: RefCell::default(),
            rest: None,
            homes: Box::new(home_of),
        }
    }

    /// Where users' home directories are, in place of the system's user
    /// database (Twisted's `userDatabase`): for tests, or users who are
    /// not system accounts. `None`: no such user.
    pub fn user_database(
        mut self,
        homes: impl Fn(&str) -> Option<PathBuf> + 'static,
    ) -> UserDirectory {
        self.homes = Box::new(homes);
        self
    }

    /// What serves every path that is not `/~user/...` (the directory's
    /// own path included): a site's files, say. `None`: `404`.
    pub fn then(mut self, rest: Option<Rc<dyn Resource>>) -> UserDirectory {
        self.rest = rest;
        self
    }

    /// Looks for each user's publisher at `template` with `{user}`
    /// replaced by the name (`/run/braid-web/{user}.sock`), not in their
    /// home directory.
    pub fn socket_path(mut self, template: &str) -> UserDirectory {
        self.socket = SocketPlace::Template(template.to_owned());
        self
    }

    /// The directory in each home served as files (`public_html`).
    pub fn public_html(mut self, name: &str) -> UserDirectory {
        self.public_html = name.to_owned();
        self
    }

    /// The limits of the subscriptions made for users.
    pub fn subscription_config(mut self, config: SubscriptionConfig) -> UserDirectory {
        self.config = config;
        self
    }

    fn user_resource(&self, user: &str) -> Option<Rc<dyn Resource>> {
        let home = (self.homes)(user)?;
        let socket = match &self.socket {
            SocketPlace::InHome(name) => home.join(name),
            SocketPlace::Template(t) => PathBuf::from(t.replace("{user}", user)),
        };
        if is_socket(&socket) {
            let sub = self
                .subs
                .borrow_mut()
                .entry(socket.clone())
                .or_insert_with(|| {
                    Rc::new(Subscription::with_config(
                        &self.reactor,
                        PublisherAddress::Unix(socket),
                        self.config.clone(),
                    ))
                })
                .clone();
            return Some(sub);
        }
        let files = home.join(&self.public_html);
        files
            .is_dir()
            .then(|| Rc::new(File::new(files)) as Rc<dyn Resource>)
    }
}

impl fmt::Debug for UserDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDirectory")
            .field("socket", &self.socket)
            .field("public_html", &self.public_html)
            .finish()
    }
}

impl Resource for UserDirectory {
    fn render(&self, request: Request) -> Reply {
        match &self.rest {
            Some(r) => r.render(request),
            None => Response::not_found().into(),
        }
    }

    fn fallback(&self) -> Option<Rc<dyn Resource>> {
        self.rest.clone()
    }

    fn child(&self, segment: &str, _: &Request) -> Option<Rc<dyn Resource>> {
        let user = segment.strip_prefix('~')?;
        let plausible = !user.is_empty()
            && user.len() <= 32
            && !user.starts_with(['-', '.'])
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !plausible {
            return None;
        }
        self.user_resource(user)
    }
}

#[cfg(unix)]
fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// No Unix sockets on Windows: a user's publisher is never there.
#[cfg(not(unix))]
fn is_socket(_: &Path) -> bool {
    false
}

/// No system user database to ask on Windows: users come from a database
/// given to the directory (Twisted's `userDatabase`).
#[cfg(not(unix))]
fn home_of(_: &str) -> Option<PathBuf> {
    None
}

/// The user's home directory, from the system's user database
/// (`getpwnam_r`, so NSS sources count).
#[cfg(unix)]
fn home_of(user: &str) -> Option<PathBuf> {
    use std::ffi::{CStr, CString, OsStr};
    use std::os::unix::ffi::OsStrExt;
    let name = CString::new(user).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r writes it and points its
    // strings into `buf`, which outlives their use here.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        );
        if rc != 0 || out.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        let dir = CStr::from_ptr(pw.pw_dir);
        Some(PathBuf::from(OsStr::from_bytes(dir.to_bytes())))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn users_are_looked_up() {
        assert_eq!(home_of("root"), Some(PathBuf::from("/root")));
        assert_eq!(home_of("no-such-user-here"), None);
        assert_eq!(home_of("nul\0"), None);
    }
}
