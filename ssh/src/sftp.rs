//! An SFTP server (protocol version 3, draft-ietf-secsh-filexfer-02, what
//! OpenSSH's `sftp` and `scp` speak) over a root directory: a braid
//! [`Protocol`] run as the `sftp` subsystem of a session channel.
//!
//! Paths are the client's view: `/` is the root directory, `..` never
//! leaves it, and a symbolic link that points outside is refused. Files
//! are read and written with `std::fs` on the reactor's thread (local
//! disk calls, as Twisted's `SFTPServerForUnixConchUser` makes them).
//! Requests are capped at [`MAX_PACKET`]; a larger length ends the
//! session.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, ReadDir};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use braid::{Protocol, Transport};

use crate::posix_attrs;

/// The largest request accepted (OpenSSH's sftp-server allows 256 KiB).
pub const MAX_PACKET: usize = 256 * 1024;
/// Open handles per session.
const MAX_HANDLES: usize = 256;
/// Largest READ answered at once.
const MAX_READ: u32 = 64 * 1024;

const FX_OK: u32 = 0;
const FX_EOF: u32 = 1;
const FX_NO_SUCH_FILE: u32 = 2;
const FX_PERMISSION_DENIED: u32 = 3;
const FX_FAILURE: u32 = 4;
const FX_BAD_MESSAGE: u32 = 5;
const FX_OP_UNSUPPORTED: u32 = 8;

const ATTR_SIZE: u32 = 1;
const ATTR_UIDGID: u32 = 2;
const ATTR_PERMISSIONS: u32 = 4;
const ATTR_ACMODTIME: u32 = 8;

/// An SFTP session over `root`.
#[derive(Debug)]
pub struct SftpServer {
    root: PathBuf,
    buf: Vec<u8>,
    handles: HashMap<u32, Handle>,
    next_handle: u32,
    initialised: bool,
    /// The session was ended (a request over the cap): later bytes are
    /// ignored, whatever they hold.
    ended: bool,
}

#[derive(Debug)]
enum Handle {
    File(File),
    // Boxed: Windows' ReadDir holds a whole WIN32_FIND_DATAW.
    Dir(Option<Box<ReadDir>>),
}

/// A malformed request.
struct Bad;

/// Reads SFTP's wire types from a request.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, Bad> {
        let (&b, rest) = self.0.split_first().ok_or(Bad)?;
        self.0 = rest;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        let b = self.0.get(..4).ok_or(Bad)?;
        let v = u32::from_be_bytes(b.try_into().map_err(|_| Bad)?);
        self.0 = &self.0[4..];
        Ok(v)
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Bad> {
        let n = self.u32()? as usize;
        let b = self.0.get(..n).ok_or(Bad)?;
        self.0 = &self.0[n..];
        Ok(b)
    }
    fn string(&mut self) -> Result<String, Bad> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| Bad)
    }
    fn attrs(&mut self) -> Result<Attrs, Bad> {
        let flags = self.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.times = Some((self.u32()?, self.u32()?));
        }
        if flags & 0x8000_0000 != 0 {
            for _ in 0..self.u32()? {
                self.bytes()?;
                self.bytes()?;
            }
        }
        Ok(a)
    }
}

#[derive(Default, Debug)]
struct Attrs {
    size: Option<u64>,
    uid_gid: Option<(u32, u32)>,
    permissions: Option<u32>,
    times: Option<(u32, u32)>,
}

impl Attrs {
    fn of(m: &fs::Metadata) -> Attrs {
        let p = posix_attrs::of(m);
        Attrs {
            size: Some(m.len()),
            uid_gid: Some((p.uid, p.gid)),
            permissions: Some(p.mode),
            times: Some((p.atime as u32, p.mtime as u32)),
        }
    }
    fn put(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        flags |= if self.size.is_some() { ATTR_SIZE } else { 0 };
        flags |= if self.uid_gid.is_some() {
            ATTR_UIDGID
        } else {
            0
        };
        flags |= if self.permissions.is_some() {
            ATTR_PERMISSIONS
        } else {
            0
        };
        flags |= if self.times.is_some() {
            ATTR_ACMODTIME
        } else {
            0
        };
        put_u32(out, flags);
        if let Some(s) = self.size {
            put_u64(out, s);
        }
        if let Some((u, g)) = self.uid_gid {
            put_u32(out, u);
            put_u32(out, g);
        }
        if let Some(p) = self.permissions {
            put_u32(out, p);
        }
        if let Some((a, m)) = self.times {
            put_u32(out, a);
            put_u32(out, m);
        }
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn status_of(e: &io::Error) -> u32 {
    match e.kind() {
        io::ErrorKind::NotFound => FX_NO_SUCH_FILE,
        io::ErrorKind::PermissionDenied => FX_PERMISSION_DENIED,
        io::ErrorKind::UnexpectedEof => FX_EOF,
        _ => FX_FAILURE,
    }
}

/// An `ls -l` line for a NAME entry's long name.
fn long_name(name: &str, m: &fs::Metadata) -> String {
    let p = posix_attrs::of(m);
    let mode = p.mode;
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        _ => '-',
    };
    let mut perms = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    format!(
        "{kind}{perms} {:>3} {:<8} {:<8} {:>8} {}",
        p.nlink,
        p.uid,
        p.gid,
        m.len(),
        name
    )
}

impl SftpServer {
    /// A session whose `/` is `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SftpServer {
            root: root.into(),
            buf: Vec::new(),
            handles: HashMap::new(),
            next_handle: 1,
            initialised: false,
            ended: false,
        }
    }

    /// The client's path as a path under the root (lexically: `..`
    /// stops at `/`).
    fn local(&self, path: &str) -> PathBuf {
        let mut clean = PathBuf::new();
        for c in Path::new(path).components() {
            match c {
                Component::Normal(p) => clean.push(p),
                Component::ParentDir => {
                    clean.pop();
                }
                _ => {}
            }
        }
        self.root.join(clean)
    }

    /// The client's view of a path under the root.
    fn client_path(&self, local: &Path) -> String {
        let rel = local.strip_prefix(&self.root).unwrap_or(Path::new(""));
        format!("/{}", rel.display())
    }

    /// Refuses a path whose existing part resolves (through symbolic
    /// links) outside the root.
    fn checked(&self, path: &str) -> io::Result<PathBuf> {
        let p = self.local(path);
        let root = fs::canonicalize(&self.root)?;
        // The deepest existing ancestor decides.
        let mut probe = p.as_path();
        loop {
            match fs::canonicalize(probe) {
                Ok(real) if real.starts_with(&root) => return Ok(p),
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "outside the root",
                    ))
                }
                Err(_) => match probe.parent() {
                    Some(parent) => probe = parent,
                    None => return Ok(p),
                },
            }
        }
    }

    fn handle(&mut self, h: Handle) -> Option<Vec<u8>> {
        if self.handles.len() >= MAX_HANDLES {
            return None;
        }
        let id = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1);
        self.handles.insert(id, h);
        Some(id.to_be_bytes().to_vec())
    }

    fn handle_id(b: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(b.try_into().ok()?))
    }

    /// Answers one request: the reply packet's body (type first).
    fn request(&mut self, kind: u8, r: &mut Reader<'_>) -> Result<Vec<u8>, Bad> {
        if kind == 1 {
            // INIT: we speak version 3, with no extensions.
            self.initialised = true;
            let mut out = vec![2];
            put_u32(&mut out, 3);
            return Ok(out);
        }
        let id = r.u32()?;
        let mut out = Vec::new();
        let status = |out: &mut Vec<u8>, code: u32, msg: &str| {
            out.clear();
            out.push(101);
            put_u32(out, id);
            put_u32(out, code);
            put_bytes(out, msg.as_bytes());
            put_bytes(out, b"");
        };
        let io_status =
            |out: &mut Vec<u8>, e: io::Error| status(out, status_of(&e), &e.to_string());
        match kind {
            3 => {
                // OPEN path pflags attrs
                let path = r.string()?;
                let flags = r.u32()?;
                let attrs = r.attrs()?;
                let mut o = OpenOptions::new();
                o.read(flags & 1 != 0)
                    .write(flags & 2 != 0)
                    .append(flags & 4 != 0)
                    .create(flags & 8 != 0 && flags & 0x20 == 0)
                    .truncate(flags & 0x10 != 0)
                    .create_new(flags & 0x20 != 0);
                posix_attrs::create_mode(&mut o, attrs.permissions.unwrap_or(0o666) & 0o7777);
                match self.checked(&path).and_then(|p| o.open(p)) {
                    Ok(f) => match self.handle(Handle::File(f)) {
                        Some(h) => self.reply_handle(&mut out, id, &h),
                        None => status(&mut out, FX_FAILURE, "too many open handles"),
                    },
                    Err(e) => io_status(&mut out, e),
                }
            }
            4 => {
                let h = Self::handle_id(r.bytes()?);
                match h.and_then(|h| self.handles.remove(&h)) {
                    Some(_) => status(&mut out, FX_OK, ""),
                    None => status(&mut out, FX_FAILURE, "no such handle"),
                }
            }
            5 => {
                // READ handle offset len
                let h = Self::handle_id(r.bytes()?);
                let (offset, len) = (r.u64()?, r.u32()?.min(MAX_READ));
                match h.and_then(|h| self.handles.get_mut(&h)) {
                    Some(Handle::File(f)) => {
                        let mut data = vec![0; len as usize];
                        let read = f
                            .seek(SeekFrom::Start(offset))
                            .and_then(|_| f.read(&mut data));
                        match read {
                            Ok(0) if len > 0 => status(&mut out, FX_EOF, "end of file"),
                            Ok(n) => {
                                out.push(103);
                                put_u32(&mut out, id);
                                put_bytes(&mut out, &data[..n]);
                            }
                            Err(e) => io_status(&mut out, e),
                        }
                    }
                    _ => status(&mut out, FX_FAILURE, "no such file handle"),
                }
            }
            6 => {
                // WRITE handle offset data
                let h = Self::handle_id(r.bytes()?);
                let offset = r.u64()?;
                let data = r.bytes()?;
                match h.and_then(|h| self.handles.get_mut(&h)) {
                    Some(Handle::File(f)) => {
                        match f
                            .seek(SeekFrom::Start(offset))
                            .and_then(|_| f.write_all(data))
                        {
                            Ok(()) => status(&mut out, FX_OK, ""),
                            Err(e) => io_status(&mut out, e),
                        }
                    }
                    _ => status(&mut out, FX_FAILURE, "no such file handle"),
                }
            }
            7 | 17 => {
                // LSTAT / STAT path
                let path = r.string()?;
                let m = self.checked(&path).and_then(|p| {
                    if kind == 7 {
                        fs::symlink_metadata(p)
                    } else {
                        fs::metadata(p)
                    }
                });
                match m {
                    Ok(m) => Self::reply_attrs(&mut out, id, &Attrs::of(&m)),
                    Err(e) => io_status(&mut out, e),
                }
            }
            8 => {
                let h = Self::handle_id(r.bytes()?);
                match h.and_then(|h| self.handles.get(&h)) {
                    Some(Handle::File(f)) => match f.metadata() {
                        Ok(m) => Self::reply_attrs(&mut out, id, &Attrs::of(&m)),
                        Err(e) => io_status(&mut out, e),
                    },
                    _ => status(&mut out, FX_FAILURE, "no such file handle"),
                }
            }
            9 => {
                // SETSTAT path attrs
                let path = self.checked(&r.string()?);
                let attrs = r.attrs()?;
                let done = path.and_then(|p| {
                    let f = File::options()
                        .write(true)
                        .open(&p)
                        .or_else(|_| File::open(&p))?;
                    set_attrs(&f, &attrs)
                });
                match done {
                    Ok(()) => status(&mut out, FX_OK, ""),
                    Err(e) => io_status(&mut out, e),
                }
            }
            10 => {
                // FSETSTAT handle attrs
                let h = Self::handle_id(r.bytes()?);
                let attrs = r.attrs()?;
                match h.and_then(|h| self.handles.get(&h)) {
                    Some(Handle::File(f)) => match set_attrs(f, &attrs) {
                        Ok(()) => status(&mut out, FX_OK, ""),
                        Err(e) => io_status(&mut out, e),
                    },
                    _ => status(&mut out, FX_FAILURE, "no such file handle"),
                }
            }
            11 => {
                let path = r.string()?;
                match self.checked(&path).and_then(|p| fs::read_dir(&p)) {
                    Ok(d) => match self.handle(Handle::Dir(Some(Box::new(d)))) {
                        Some(h) => self.reply_handle(&mut out, id, &h),
                        None => status(&mut out, FX_FAILURE, "too many open handles"),
                    },
                    Err(e) => io_status(&mut out, e),
                }
            }
            12 => {
                let h = Self::handle_id(r.bytes()?);
                match h.and_then(|h| self.handles.get_mut(&h)) {
                    Some(Handle::Dir(dir)) => {
                        let mut names = Vec::new();
                        if let Some(d) = dir.as_mut() {
                            for entry in d.by_ref().take(100).flatten() {
                                if let Ok(m) = entry.metadata() {
                                    names.push((
                                        entry.file_name().to_string_lossy().into_owned(),
                                        m,
                                    ));
                                }
                            }
                        }
                        if names.is_empty() {
                            *dir = None;
                            status(&mut out, FX_EOF, "");
                        } else {
                            out.push(104);
                            put_u32(&mut out, id);
                            put_u32(&mut out, names.len() as u32);
                            for (n, m) in &names {
                                put_bytes(&mut out, n.as_bytes());
                                put_bytes(&mut out, long_name(n, m).as_bytes());
                                Attrs::of(m).put(&mut out);
                            }
                        }
                    }
                    _ => status(&mut out, FX_FAILURE, "no such directory handle"),
                }
            }
            13 => {
                let path = r.string()?;
                match self.checked(&path).and_then(fs::remove_file) {
                    Ok(()) => status(&mut out, FX_OK, ""),
                    Err(e) => io_status(&mut out, e),
                }
            }
            14 => {
                let path = r.string()?;
                let attrs = r.attrs()?;
                let made = self.checked(&path).and_then(|p| {
                    let mut d = fs::DirBuilder::new();
                    posix_attrs::dir_mode(&mut d, attrs.permissions.unwrap_or(0o777) & 0o7777);
                    d.create(p)
                });
                match made {
                    Ok(()) => status(&mut out, FX_OK, ""),
                    Err(e) => io_status(&mut out, e),
                }
            }
            15 => {
                let path = r.string()?;
                match self.checked(&path).and_then(fs::remove_dir) {
                    Ok(()) => status(&mut out, FX_OK, ""),
                    Err(e) => io_status(&mut out, e),
                }
            }
            16 => {
                // REALPATH: the client's view, "." being the root.
                let path = r.string()?;
                let p = self.local(&path);
                let shown = self.client_path(&p);
                out.push(104);
                put_u32(&mut out, id);
                put_u32(&mut out, 1);
                put_bytes(&mut out, shown.as_bytes());
                put_bytes(&mut out, shown.as_bytes());
                Attrs::default().put(&mut out);
            }
            18 => {
                let (from, to) = (r.string()?, r.string()?);
                let moved = self.checked(&from).and_then(|f| {
                    let t = self.checked(&to)?;
                    // SFTP v3's rename does not overwrite.
                    if t.symlink_metadata().is_ok() {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "target exists",
                        ));
                    }
                    fs::rename(f, t)
                });
                match moved {
                    Ok(()) => status(&mut out, FX_OK, ""),
                    Err(e) => io_status(&mut out, e),
                }
            }
            19 => {
                let path = r.string()?;
                match self.checked(&path).and_then(fs::read_link) {
                    Ok(target) => {
                        let t = target.to_string_lossy().into_owned();
                        out.push(104);
                        put_u32(&mut out, id);
                        put_u32(&mut out, 1);
                        put_bytes(&mut out, t.as_bytes());
                        put_bytes(&mut out, t.as_bytes());
                        Attrs::default().put(&mut out);
                    }
                    Err(e) => io_status(&mut out, e),
                }
            }
            _ => status(&mut out, FX_OP_UNSUPPORTED, "unsupported request"),
        }
        Ok(out)
    }

    fn reply_handle(&self, out: &mut Vec<u8>, id: u32, h: &[u8]) {
        out.push(102);
        put_u32(out, id);
        put_bytes(out, h);
    }

    fn reply_attrs(out: &mut Vec<u8>, id: u32, a: &Attrs) {
        out.push(105);
        put_u32(out, id);
        a.put(out);
    }

    fn send(t: &Transport, body: &[u8]) {
        t.write_sequence(&[&(body.len() as u32).to_be_bytes(), body]);
    }
}

/// SETSTAT's changes: size, permissions, times (owners are left).
fn set_attrs(f: &File, a: &Attrs) -> io::Result<()> {
    if let Some(size) = a.size {
        f.set_len(size)?;
    }
    if let Some(perm) = a.permissions {
        posix_attrs::set_mode(f, perm & 0o7777)?;
    }
    if let Some((atime, mtime)) = a.times {
        let t = |s: u32| std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(s));
        f.set_times(
            fs::FileTimes::new()
                .set_accessed(t(atime))
                .set_modified(t(mtime)),
        )?;
    }
    Ok(())
}

impl Protocol for SftpServer {
    fn read_eof(&mut self, t: &Transport) {
        // The client is done: exit 0, as OpenSSH's sftp-server does
        // (scp checks it).
        if let Some(ch) = t.layer::<crate::SessionChannel>() {
            ch.set_exit(crate::ExitReport::Status(0));
        }
        t.lose_connection();
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if self.ended {
            return;
        }
        self.buf.extend_from_slice(data);
        loop {
            if self.buf.len() < 4 {
                return;
            }
            let len =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if len == 0 || len > MAX_PACKET {
                tracing::info!(len, "sftp: request too large; ending the session");
                t.lose_connection();
                self.buf.clear();
                self.ended = true;
                return;
            }
            if self.buf.len() < 4 + len {
                return;
            }
            let packet: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
            let mut r = Reader(&packet);
            let reply = match r.u8() {
                Ok(kind) if kind == 1 || self.initialised => self.request(kind, &mut r),
                _ => Err(Bad),
            };
            match reply {
                Ok(body) => Self::send(t, &body),
                Err(Bad) => {
                    // A request we cannot parse: answer if it had an id.
                    if packet.len() >= 5 {
                        let mut out = vec![101];
                        out.extend_from_slice(&packet[1..5]);
                        put_u32(&mut out, FX_BAD_MESSAGE);
                        put_bytes(&mut out, b"bad message");
                        put_bytes(&mut out, b"");
                        Self::send(t, &out);
                    } else {
                        t.lose_connection();
                        self.buf.clear();
                        self.ended = true;
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid::testing::StringTransport;

    fn packet(kind: u8, id: Option<u32>, body: &[u8]) -> Vec<u8> {
        let mut p = vec![kind];
        if let Some(id) = id {
            put_u32(&mut p, id);
        }
        p.extend_from_slice(body);
        let mut out = (p.len() as u32).to_be_bytes().to_vec();
        out.extend(p);
        out
    }

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_bytes(&mut v, s);
        v
    }

    /// The replies in `wire`, each as (type, body after the type).
    fn replies(wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut w = wire;
        while w.len() >= 4 {
            let n = u32::from_be_bytes(w[..4].try_into().unwrap()) as usize;
            out.push((w[4], w[5..4 + n].to_vec()));
            w = &w[4 + n..];
        }
        out
    }

    fn session(chunk: usize) {
        let dir =
            std::env::temp_dir().join(format!("braid-sftp-unit-{}-{chunk}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut input = packet(1, None, &3u32.to_be_bytes());
        // OPEN "/a.txt" WRITE|CREAT|TRUNC, no attrs.
        let mut open = string(b"/a.txt");
        put_u32(&mut open, 2 | 8 | 0x10);
        put_u32(&mut open, 0);
        input.extend(packet(3, Some(7), &open));
        let st = StringTransport::new();
        let t = st.transport();
        let mut s = SftpServer::new(&dir);
        for piece in input.chunks(chunk) {
            s.data_received(&t, piece);
        }
        let r = replies(&st.take());
        assert_eq!(r[0].0, 2, "VERSION");
        assert_eq!(r[1].0, 102, "HANDLE");
        let handle = r[1].1[8..].to_vec();
        // WRITE "hello" at 0, CLOSE, then STAT.
        let mut w = string(&handle);
        put_u64(&mut w, 0);
        w.extend(string(b"hello"));
        let mut more = packet(6, Some(8), &w);
        more.extend(packet(4, Some(9), &string(&handle)));
        more.extend(packet(17, Some(10), &string(b"a.txt")));
        for piece in more.chunks(chunk) {
            s.data_received(&t, piece);
        }
        let r = replies(&st.take());
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].0, &r[0].1[4..8]), (101, &FX_OK.to_be_bytes()[..]));
        assert_eq!((r[1].0, &r[1].1[4..8]), (101, &FX_OK.to_be_bytes()[..]));
        assert_eq!(r[2].0, 105, "ATTRS");
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"hello");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_session_fed_one_byte_at_a_time() {
        session(1);
    }

    #[test]
    fn a_session_fed_all_at_once() {
        session(usize::MAX);
    }

    #[test]
    fn an_oversized_request_ends_the_session() {
        let st = StringTransport::new();
        let mut s = SftpServer::new("/nonexistent");
        s.data_received(&st.transport(), &(MAX_PACKET as u32 + 1).to_be_bytes());
        assert!(st.is_disconnecting());
    }

    #[test]
    fn nothing_is_answered_after_the_session_ended() {
        // Found by the fuzzer: an oversized length, then a valid INIT in
        // later reads got a VERSION after the close (not when whole).
        let mut input = 0xffff_ffaeu32.to_be_bytes().to_vec();
        input.extend(packet(1, None, &3u32.to_be_bytes()));
        for chunk in [1, input.len()] {
            let st = StringTransport::new();
            let mut s = SftpServer::new("/nonexistent");
            for piece in input.chunks(chunk) {
                s.data_received(&st.transport(), piece);
            }
            assert!(
                st.value().is_empty(),
                "answered after the end, fed {chunk} at a time"
            );
            assert!(st.is_disconnecting());
        }
    }

    #[test]
    fn a_truncated_request_is_a_bad_message_not_a_panic() {
        let st = StringTransport::new();
        let t = st.transport();
        let mut s = SftpServer::new("/nonexistent");
        s.data_received(&t, &packet(1, None, &3u32.to_be_bytes()));
        st.take();
        // OPEN with an id and a string length past the end.
        s.data_received(&t, &packet(3, Some(5), &[0, 0, 0, 200, b'x']));
        let r = replies(&st.take());
        assert_eq!(r[0].0, 101);
        assert_eq!(&r[0].1[4..8], &FX_BAD_MESSAGE.to_be_bytes());
    }

    #[test]
    fn paths_stay_under_the_root() {
        let s = SftpServer::new("/srv/root");
        assert_eq!(
            s.local("../../etc/passwd"),
            PathBuf::from("/srv/root/etc/passwd")
        );
        assert_eq!(s.local("/a/../../b"), PathBuf::from("/srv/root/b"));
        assert_eq!(s.client_path(&s.local("x/./y")), "/x/y");
    }
}
