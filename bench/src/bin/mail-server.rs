//! braid-mail's ESMTP server for the SMTP comparison: delivers to
//! `--maildir DIR` (users bench0..bench99 at localhost), prints
//! `listening PORT`. `--no-fsync` skips the fsyncs, to show their cost.

use std::rc::Rc;

use braid::Reactor;
use braid_bench::arg;
use braid_mail::server::{Server, SessionConfig};
use braid_mail::Maildir;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let root: String = arg(&args, "--maildir", String::from("/tmp/braid-bench-maildir"));
    let fsync = !args.iter().any(|a| a == "--no-fsync");
    let reactor = Reactor::new().expect("reactor");
    let users: Vec<String> = (0..100).map(|i| format!("bench{i}")).collect();
    let maildir = Maildir::new(&reactor, &root, ["localhost"])
        .users(&users)
        .fsync(fsync);
    let server = Rc::new(Server::new(&reactor, SessionConfig::default(), maildir));
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), server.factory())
        .expect("listen");
    println!("listening {}", port.local_addr().port());
    reactor.run().expect("run");
}
