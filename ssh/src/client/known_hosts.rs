//! Checking a server's host key against OpenSSH's `known_hosts` (plain
//! and hashed names, `[host]:port`, wildcards and negation, `@revoked`).

use std::io::Write;
use std::path::Path;

use sha1::{Digest, Sha1};
use ssh_key::known_hosts::{HostPatterns, KnownHosts, Marker};
use ssh_key::PublicKey;

/// What `known_hosts` says of a host and key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Listed with this key.
    Known,
    /// Listed with other keys only (or this key revoked).
    Changed,
    /// Not listed.
    Unknown,
}

/// The name OpenSSH files a host under: `host`, or `[host]:port` off 22.
pub(crate) fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `*` and `?` globbing, as OpenSSH's `match_pattern`.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p.eq_ignore_ascii_case(n) => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

fn patterns_match(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => hmac_sha1(salt, name.as_bytes()) == *hash,
        HostPatterns::Patterns(list) => {
            let mut hit = false;
            for p in list {
                if let Some(neg) = p.strip_prefix('!') {
                    if glob(neg.as_bytes(), name.as_bytes()) {
                        return false;
                    }
                } else if glob(p.as_bytes(), name.as_bytes()) {
                    hit = true;
                }
            }
            hit
        }
    }
}

/// Looks `name` and `key` up in the text of a `known_hosts` file.
pub(crate) fn check(text: &str, name: &str, key: &PublicKey) -> Verdict {
    let mut listed = false;
    for entry in KnownHosts::new(text).flatten() {
        if !patterns_match(entry.host_patterns(), name) {
            continue;
        }
        let same = entry.public_key().key_data() == key.key_data();
        match entry.marker() {
            Some(Marker::Revoked) if same => return Verdict::Changed,
            Some(_) => continue,
            None if same => return Verdict::Known,
            None => listed = true,
        }
    }
    if listed {
        Verdict::Changed
    } else {
        Verdict::Unknown
    }
}

/// Appends `name key` to the file (OpenSSH's `accept-new`).
pub(crate) fn remember(path: &Path, name: &str, key: &PublicKey) -> std::io::Result<()> {
    let line = format!(
        "{name} {}\n",
        key.to_openssh().map_err(std::io::Error::other)?
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PublicKey {
        PublicKey::from_openssh(&crate::HostKey::generate().unwrap().public_openssh()).unwrap()
    }

    #[test]
    fn plain_names_ports_and_patterns() {
        let (k, other) = (key(), key());
        let text = format!(
            "[127.0.0.1]:2222 {}\nexample.org,*.example.net,!bad.example.net {}\n",
            k.to_openssh().unwrap(),
            other.to_openssh().unwrap()
        );
        assert_eq!(
            check(&text, &host_name("127.0.0.1", 2222), &k),
            Verdict::Known
        );
        assert_eq!(
            check(&text, &host_name("127.0.0.1", 22), &k),
            Verdict::Unknown
        );
        assert_eq!(check(&text, "www.example.net", &other), Verdict::Known);
        assert_eq!(check(&text, "www.example.net", &k), Verdict::Changed);
        assert_eq!(check(&text, "bad.example.net", &other), Verdict::Unknown);
    }

    #[test]
    fn hashed_names_as_ssh_keygen_writes_them() {
        // `ssh-keygen -H` of "host.example": |1|salt|hmac-sha1(salt, name).
        let k = key();
        let salt = [7u8; 20];
        let hash = hmac_sha1(&salt, b"host.example");
        let entry = format!(
            "|1|{}|{} {}\n",
            base64(&salt),
            base64(&hash),
            k.to_openssh().unwrap()
        );
        assert_eq!(check(&entry, "host.example", &k), Verdict::Known);
        assert_eq!(check(&entry, "other.example", &k), Verdict::Unknown);
    }

    fn base64(b: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2.
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn a_revoked_key_is_changed_not_known() {
        let k = key();
        let text = format!(
            "@revoked * {}\nhost {}\n",
            k.to_openssh().unwrap(),
            k.to_openssh().unwrap()
        );
        assert_eq!(check(&text, "host", &k), Verdict::Changed);
    }
}
