//! SFTP speaks POSIX file attributes. On Unix they are the file's own; on
//! Windows they are made up from what Windows has (the read-only flag,
//! the file type, the times; owner 0), as OpenSSH for Windows does, and
//! modes asked for are kept only as the read-only flag.

use std::fs::{self, DirBuilder, OpenOptions};

/// A file's owner, group, mode (with its type bits), access and
/// modification times (seconds since 1970), and link count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Posix {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
    pub(crate) atime: i64,
    pub(crate) mtime: i64,
    pub(crate) nlink: u64,
}

#[cfg(unix)]
pub(crate) fn of(m: &fs::Metadata) -> Posix {
    use std::os::unix::fs::MetadataExt;
    Posix {
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode(),
        atime: m.atime(),
        mtime: m.mtime(),
        nlink: m.nlink(),
    }
}

#[cfg(not(unix))]
pub(crate) fn of(m: &fs::Metadata) -> Posix {
    let secs = |t: std::io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64)
    };
    let kind = if m.is_dir() {
        0o040000
    } else if m.file_type().is_symlink() {
        0o120000
    } else {
        0o100000
    };
    let perm = match (m.is_dir(), m.permissions().readonly()) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    };
    Posix {
        uid: 0,
        gid: 0,
        mode: kind | perm,
        atime: secs(m.accessed()),
        mtime: secs(m.modified()),
        nlink: 1,
    }
}

/// Creates new files with `mode` (Unix; ignored on Windows).
pub(crate) fn create_mode(o: &mut OpenOptions, mode: u32) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(o, mode);
    #[cfg(not(unix))]
    let _ = (o, mode);
}

/// Creates new directories with `mode` (Unix; ignored on Windows).
pub(crate) fn dir_mode(d: &mut DirBuilder, mode: u32) {
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(d, mode);
    #[cfg(not(unix))]
    let _ = (d, mode);
}

/// Sets `f`'s permissions to `mode` (on Windows: read-only unless the
/// owner may write).
pub(crate) fn set_mode(f: &fs::File, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let mut p = f.metadata()?.permissions();
        p.set_readonly(mode & 0o200 == 0);
        f.set_permissions(p)
    }
}
