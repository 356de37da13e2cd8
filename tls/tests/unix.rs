#![cfg(unix)]
//! TLS over a Unix socket, with descriptors passed through the layer.

use std::cell::RefCell;
use std::rc::Rc;

use braid::testing::run_until;
use braid::{Address, Reactor};
use braid_tls::testing as pki;
use braid_tls::{TlsProtocol, TlsStart};

#[path = "../../tests/common/unix_fds.rs"]
mod unix_fds;
use unix_fds::*;

/// TLS over a Unix socket, with a descriptor passed through it: the layer
/// hands descriptors down on send and up on receipt.
#[test]
fn descriptors_pass_through_a_tls_layer() {
    let d = dir("tls");
    let path = d.join("tls.sock");
    let reactor = Reactor::new().unwrap();
    let kept = Rc::new(RefCell::new(Vec::new()));
    let k = kept.clone();
    let config = pki::server_config();
    let _port = reactor
        .listen_unix(&path, move |_: &Address| {
            TlsProtocol::new(TlsStart::server(&config), Passer(k.clone()))
        })
        .unwrap();
    let log = Rc::new(RefCell::new(Log::default()));
    let l = log.clone();
    let client = pki::client_config();
    reactor.connect_unix(
        &path,
        move |_: &Address| {
            TlsProtocol::new(
                TlsStart::client(&client, "localhost"),
                Client {
                    log: l.clone(),
                    send: b"",
                },
            )
        },
        None,
    );
    run_until(&reactor, LIMIT, || log.borrow().lost).unwrap();
    assert_eq!(log.borrow().got, b"start;abg");
    let fds: Vec<_> = log
        .borrow()
        .events
        .iter()
        .filter(|e| e.starts_with("fd:"))
        .cloned()
        .collect();
    assert_eq!(fds, ["fd:alpha", "fd:beta", "fd:gamma"]);
    std::fs::remove_dir_all(&d).unwrap();
}
