//! Static files (Twisted's `twisted.web.static.File`): a directory served
//! with content types, byte ranges, conditional requests and escaped
//! listings, and no way out of its root.

use std::fmt;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header;
use http::{Method, StatusCode};
use http_body::{Frame, SizeHint};

use super::body::{Body, BodyError};
use super::server::{Reply, Request, Resource, Response};

/// Bytes read from a file per body piece.
const CHUNK: usize = 64 * 1024;

/// Serves the files under a directory (or one file).
///
/// Paths are decoded segment by segment; a segment that is `.`, `..`,
/// holds a `/`, `\` or NUL (an encoded slash, say), or names a hidden file
/// (leading `.`) unless [`hidden`](Self::hidden) allows it, is `404`.
/// Symbolic links that lead out of the root are `404` unless
/// [`follow_symlinks_out`](Self::follow_symlinks_out).
///
/// ```no_run
/// use braid_web::{File, Site};
/// let site = Site::new(File::new("/srv/www"));
/// # let _ = site;
/// ```
#[derive(Clone)]
pub struct File {
    root: PathBuf,
    listings: bool,
    hidden: bool,
    symlinks_out: bool,
    index: Vec<String>,
}

impl File {
    /// Serves `root` (a directory or a single file).
    pub fn new(root: impl Into<PathBuf>) -> File {
        File {
            root: root.into(),
            listings: true,
            hidden: false,
            symlinks_out: false,
            index: vec!["index.html".into()],
        }
    }

    /// Lists directories without an index file (on by default; off
    /// answers `403`).
    pub fn listings(mut self, on: bool) -> File {
        self.listings = on;
        self
    }

    /// Serves names that start with `.` (off by default).
    pub fn hidden(mut self, on: bool) -> File {
        self.hidden = on;
        self
    }

    /// Follows symbolic links that lead out of the root (off by default).
    pub fn follow_symlinks_out(mut self, on: bool) -> File {
        self.symlinks_out = on;
        self
    }

    /// The names tried, in order, for a directory's own page
    /// (`index.html` by default).
    pub fn index_names(mut self, names: &[&str]) -> File {
        self.index = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The file for `segments` below the root, or `None` if the path is
    /// refused or does not exist.
    fn resolve(&self, segments: &[String]) -> Option<PathBuf> {
        let mut path = self.root.clone();
        let last = segments.len().saturating_sub(1);
        for (i, seg) in segments.iter().enumerate() {
            // A trailing empty segment is "the directory itself".
            if seg.is_empty() && i == last {
                break;
            }
            if seg.is_empty()
                || seg == "."
                || seg == ".."
                || seg.contains(['/', '\\', '\0'])
                || (!self.hidden && seg.starts_with('.'))
            {
                return None;
            }
            let p = Path::new(seg);
            if p.components().count() != 1
                || !matches!(p.components().next(), Some(Component::Normal(_)))
            {
                return None;
            }
            path.push(seg);
        }
        if !self.symlinks_out {
            let root = fs::canonicalize(&self.root).ok()?;
            let real = fs::canonicalize(&path).ok()?;
            if !real.starts_with(&root) {
                return None;
            }
        }
        Some(path)
    }

    fn serve(&self, req: &Request) -> Response {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Response::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
                .header(header::ALLOW, "GET, HEAD");
        }
        let Some(path) = self.resolve(req.postpath()) else {
            return Response::not_found();
        };
        let Ok(meta) = fs::metadata(&path) else {
            return Response::not_found();
        };
        if meta.is_dir() {
            let ends_with_slash = req.path().ends_with('/');
            if !ends_with_slash {
                let mut loc = format!("{}/", req.path());
                if let Some(q) = req.query() {
                    loc.push('?');
                    loc.push_str(q);
                }
                return Response::redirect(StatusCode::MOVED_PERMANENTLY, &loc);
            }
            for name in &self.index {
                let p = path.join(name);
                if let Ok(m) = fs::metadata(&p) {
                    if m.is_file() {
                        return serve_file(req, &p, &m);
                    }
                }
            }
            if !self.listings {
                return Response::error(StatusCode::FORBIDDEN, "Forbidden");
            }
            return self.listing(req, &path);
        }
        if !meta.is_file() {
            return Response::not_found();
        }
        serve_file(req, &path, &meta)
    }

    fn listing(&self, req: &Request, dir: &Path) -> Response {
        let Ok(rd) = fs::read_dir(dir) else {
            return Response::error(StatusCode::FORBIDDEN, "Forbidden");
        };
        let mut names: Vec<(String, bool)> = rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if !self.hidden && name.starts_with('.') {
                    return None;
                }
                let is_dir = e.file_type().ok()?.is_dir();
                Some((name, is_dir))
            })
            .collect();
        names.sort();
        let title =
            html_escape(&percent_encoding::percent_decode_str(req.path()).decode_utf8_lossy());
        let mut page = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n"
        );
        for (name, is_dir) in names {
            let slash = if is_dir { "/" } else { "" };
            let href = percent_encoding::utf8_percent_encode(&name, PATH_SEGMENT).to_string();
            page.push_str(&format!(
                "<li><a href=\"{}{slash}\">{}{slash}</a></li>\n",
                html_escape(&href),
                html_escape(&name)
            ));
        }
        page.push_str("</ul></body></html>\n");
        Response::html(page)
    }
}

impl Resource for File {
    fn render(&self, request: Request) -> Reply {
        self.serve(&request).into()
    }
    fn is_leaf(&self) -> bool {
        true
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("root", &self.root)
            .field("listings", &self.listings)
            .finish()
    }
}

/// Characters escaped in a path segment of a link.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The content type for a file name, by extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "text" | "log" | "md" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "xml" => "application/xml",
        "csv" => "text/csv; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "bmp" => "image/bmp",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "xz" => "application/x-xz",
        "zst" => "application/zstd",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "rs" | "py" | "c" | "h" | "toml" | "yaml" | "yml" | "sh" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn etag_of(meta: &fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{:x}\"", meta.len(), mtime)
}

/// Whether an `If-None-Match` list names `etag` (weak comparison).
fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// One byte range resolved against the file's length.
#[derive(Debug, PartialEq, Eq)]
enum RangeReq {
    /// No (usable) range: the whole file.
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    /// No range can be satisfied: `416`.
    Unsatisfiable,
}

/// Parses a `Range` header for a file of `len` bytes. Several ranges, or a
/// malformed header, give the whole file (a server may ignore `Range`).
fn parse_range(value: &str, len: u64) -> RangeReq {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeReq::Whole;
    };
    if spec.contains(',') {
        return RangeReq::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeReq::Whole,
        (true, false) => match num(b) {
            // The last n bytes.
            Some(0) => RangeReq::Unsatisfiable,
            Some(_) if len == 0 => RangeReq::Unsatisfiable,
            Some(n) => RangeReq::Part(len.saturating_sub(n), len - 1),
            None => RangeReq::Whole,
        },
        (false, _) => {
            let Some(first) = num(a) else {
                return RangeReq::Whole;
            };
            let last = if b.is_empty() { Some(u64::MAX) } else { num(b) };
            let Some(last) = last else {
                return RangeReq::Whole;
            };
            if last < first {
                return RangeReq::Whole;
            }
            if first >= len {
                return RangeReq::Unsatisfiable;
            }
            RangeReq::Part(first, last.min(len - 1))
        }
    }
}

fn serve_file(req: &Request, path: &Path, meta: &fs::Metadata) -> Response {
    let len = meta.len();
    let etag = etag_of(meta);
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let last_modified = httpdate::fmt_http_date(modified);
    let base = |status: StatusCode| {
        Response::new(status)
            .header(header::ETAG, etag.as_str())
            .header(header::LAST_MODIFIED, last_modified.as_str())
            .header(header::ACCEPT_RANGES, "bytes")
    };
    // Conditional requests (RFC 9110 §13.2.2): If-None-Match wins over
    // If-Modified-Since.
    if let Some(inm) = req.header(header::IF_NONE_MATCH) {
        if etag_matches(inm, &etag) {
            return base(StatusCode::NOT_MODIFIED);
        }
    } else if let Some(ims) = req.header(header::IF_MODIFIED_SINCE) {
        if let Ok(since) = httpdate::parse_http_date(ims) {
            // Compare at the header's one-second resolution.
            let m = modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let s = since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            if m <= s {
                return base(StatusCode::NOT_MODIFIED);
            }
        }
    }
    let mut range = match req.header(header::RANGE) {
        Some(r) => parse_range(r, len),
        None => RangeReq::Whole,
    };
    // If-Range: the range only if the file is still the one the client has.
    if let (Some(ir), RangeReq::Part(..) | RangeReq::Unsatisfiable) =
        (req.header(header::IF_RANGE), &range)
    {
        let same = if ir.starts_with('"') {
            ir == etag
        } else {
            httpdate::fmt_http_date(modified) == ir
        };
        if !same {
            range = RangeReq::Whole;
        }
    }
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Response::error(StatusCode::FORBIDDEN, "Forbidden")
        }
        Err(_) => return Response::not_found(),
    };
    let ctype = content_type(path);
    match range {
        RangeReq::Unsatisfiable => base(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}")),
        RangeReq::Part(first, last) => base(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_TYPE, ctype)
            .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"))
            .body(FileBody::body(file, first, last - first + 1)),
        RangeReq::Whole => base(StatusCode::OK)
            .header(header::CONTENT_TYPE, ctype)
            .body(FileBody::body(file, 0, len)),
    }
}

/// Streams part of a file, one piece per poll: the connection asks for the
/// next piece only when it has sent the last, so memory stays at one piece
/// whatever the file's size (Twisted's `FileSender`).
struct FileBody {
    file: fs::File,
    start: u64,
    left: u64,
    started: bool,
}

impl FileBody {
    fn body(file: fs::File, start: u64, len: u64) -> Body {
        Body::wrap_typed(FileBody {
            file,
            start,
            left: len,
            started: false,
        })
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if !self.started {
            self.started = true;
            let start = self.start;
            if let Err(e) = self.file.seek(SeekFrom::Start(start)) {
                return Poll::Ready(Some(Err(BodyError::Io(e.to_string()))));
            }
        }
        let n = (self.left as usize).min(CHUNK);
        let mut buf = vec![0u8; n];
        match self.file.read(&mut buf) {
            Ok(0) => {
                // The file shrank under us: the message is cut short.
                Poll::Ready(Some(Err(BodyError::Io(
                    "file shrank while being sent".into(),
                ))))
            }
            Ok(got) => {
                buf.truncate(got);
                self.left -= got as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
            Err(e) => Poll::Ready(Some(Err(BodyError::Io(e.to_string())))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeReq::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeReq::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeReq::Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeReq::Part(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), RangeReq::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 100), RangeReq::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeReq::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeReq::Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), RangeReq::Whole);
        assert_eq!(parse_range("bytes=-", 100), RangeReq::Whole);
    }

    #[test]
    fn etags_compare_weakly() {
        assert!(etag_matches("\"a\"", "\"a\""));
        assert!(etag_matches("W/\"a\", \"b\"", "\"a\""));
        assert!(etag_matches("*", "\"a\""));
        assert!(!etag_matches("\"b\"", "\"a\""));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(content_type(Path::new("a/B.PNG")), "image/png");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}
