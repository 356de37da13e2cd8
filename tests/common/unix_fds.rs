//! Helpers for the Unix socket tests of the core and of braid-tls:
//! protocols that pass descriptors and log what arrives.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use braid::{Address, CloseReason, Protocol, Transport};

pub const LIMIT: Duration = Duration::from_secs(20);

pub fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("braid-unix-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        t.write(d);
    }
}

#[derive(Default)]
pub struct Log {
    /// "fd:<what the fd carried>" or "data:<bytes>", in arrival order.
    pub events: Vec<String>,
    pub got: Vec<u8>,
    pub peer: Option<Address>,
    pub lost: bool,
}

pub struct Client {
    pub log: Rc<RefCell<Log>>,
    pub send: &'static [u8],
}
impl Protocol for Client {
    fn connection_made(&mut self, t: &Transport) {
        self.log.borrow_mut().peer = Some(t.peer_addr());
        t.write(self.send);
    }
    fn data_received(&mut self, _: &Transport, d: &[u8]) {
        let mut l = self.log.borrow_mut();
        l.got.extend_from_slice(d);
        l.events
            .push(format!("data:{}", String::from_utf8_lossy(d)));
    }
    fn file_descriptor_received(&mut self, _: &Transport, fd: OwnedFd) {
        // Each descriptor is a socket's end with a word waiting in it.
        let mut word = String::new();
        std::fs::File::from(fd).read_to_string(&mut word).unwrap();
        self.log.borrow_mut().events.push(format!("fd:{word}"));
    }
    fn connection_lost(&mut self, _: &CloseReason) {
        self.log.borrow_mut().lost = true;
    }
}

/// Sends three descriptors, each with its own byte, then closes.
pub struct Passer(pub Rc<RefCell<Vec<std::os::unix::net::UnixStream>>>);
impl Protocol for Passer {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"start;");
        for word in ["alpha", "beta", "gamma"] {
            let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
            w.write_all(word.as_bytes()).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
            self.0.borrow_mut().push(w);
            t.send_file_descriptor(std::os::fd::AsFd::as_fd(&r))
                .unwrap();
            drop(r); // the transport sends its own duplicate
            t.write(&word.as_bytes()[..1]);
        }
        t.lose_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}
