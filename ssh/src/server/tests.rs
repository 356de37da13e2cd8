//! The server over the in-memory transport: what it says first, bad
//! input fed one byte at a time and all at once, the login grace time.

use std::time::Duration;

use braid::testing::{MemoryReactor, StringTransport};
use braid_cred::{InMemoryChecker, Portal};

use super::*;
use crate::ProcessAvatar;

fn server(mr: &MemoryReactor) -> SshServer<ProcessAvatar> {
    let portal = Portal::new(mr.reactor(), |_: &str, _: ()| (ProcessAvatar::new(), None))
        .checker(InMemoryChecker::new().user("alice", "pw"));
    SshServer::new(mr.reactor(), vec![HostKey::generate().unwrap()], portal)
}

#[test]
fn the_server_speaks_first_with_its_version_and_kexinit() {
    let mr = MemoryReactor::new();
    let st = StringTransport::with_reactor(mr.reactor());
    let mut p = server(&mr).connection();
    let t = st.transport();
    p.connection_made(&t);
    mr.advance(Duration::ZERO);
    assert!(st.value().starts_with(b"SSH-2.0-Sunset"));
    p.data_received(&t, b"SSH-2.0-OpenSSH_9.2\r\n");
    mr.advance(Duration::ZERO);
    let out = st.value();
    // After the version line: a binary packet, SSH_MSG_KEXINIT (20).
    let nl = out.iter().position(|b| *b == b'\n').unwrap();
    assert!(
        out.len() > nl + 6,
        "no KEXINIT after the version: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(out[nl + 1 + 5], 20);
    assert!(!st.is_disconnecting());
}

fn garbage_closes(chunk: usize) {
    let mr = MemoryReactor::new();
    let st = StringTransport::with_reactor(mr.reactor());
    let mut p = server(&mr).connection();
    let t = st.transport();
    p.connection_made(&t);
    let mut input = b"SSH-2.0-OpenSSH_9.2\r\n".to_vec();
    // A packet length of 2^32-1: no packet is that big.
    input.extend_from_slice(&[0xff; 64]);
    for piece in input.chunks(chunk) {
        p.data_received(&t, piece);
        mr.advance(Duration::ZERO);
        if st.is_disconnecting() {
            break;
        }
    }
    assert!(
        st.is_disconnecting(),
        "bad input fed {chunk} at a time must close: {:?}",
        String::from_utf8_lossy(&st.value())
    );
}

#[test]
fn garbage_after_the_version_closes_the_connection_byte_by_byte() {
    garbage_closes(1);
}

#[test]
fn garbage_after_the_version_closes_the_connection_all_at_once() {
    garbage_closes(usize::MAX);
}

#[test]
fn a_silent_client_is_dropped_after_the_login_grace_time() {
    let mr = MemoryReactor::new();
    let st = StringTransport::with_reactor(mr.reactor());
    let mut p = server(&mr).connection();
    p.connection_made(&st.transport());
    mr.advance(Duration::from_secs(119));
    assert!(!st.is_disconnecting());
    mr.advance(Duration::from_secs(2));
    assert!(st.is_disconnecting(), "not dropped after LoginGraceTime");
}

fn closes_on(input: &[u8], chunk: usize) -> bool {
    let mr = MemoryReactor::new();
    let st = StringTransport::with_reactor(mr.reactor());
    let mut p = server(&mr).connection();
    let t = st.transport();
    p.connection_made(&t);
    for piece in input.chunks(chunk) {
        p.data_received(&t, piece);
        mr.advance(Duration::ZERO);
    }
    st.is_disconnecting()
}

#[test]
fn a_version_longer_than_rfc_4253_allows_is_refused() {
    let mut v = b"SSH-2.0-".to_vec();
    v.extend(std::iter::repeat_n(b'A', 300));
    v.extend_from_slice(b"\r\n");
    assert!(closes_on(&v, 1));
    assert!(closes_on(&v, v.len()));
}

#[test]
fn a_client_that_is_not_ssh_is_refused() {
    let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(closes_on(http, 1));
    assert!(closes_on(http, http.len()));
}

#[test]
fn an_endless_first_line_is_discarded_not_buffered() {
    // Bytes that never become a line are dropped as they come (nothing
    // waits in memory, reading never pauses); the grace time ends it.
    let mr = MemoryReactor::new();
    let st = StringTransport::with_reactor(mr.reactor());
    let mut p = server(&mr).connection();
    let t = st.transport();
    p.connection_made(&t);
    let junk = vec![b'A'; 64 * 1024];
    for _ in 0..16 {
        p.data_received(&t, &junk);
        mr.advance(Duration::ZERO);
    }
    assert!(!st.is_reading_paused() && !st.is_disconnecting());
    mr.advance(Duration::from_secs(121));
    assert!(st.is_disconnecting());
}
