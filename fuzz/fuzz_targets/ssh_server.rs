//! braid-ssh's server fed anything after a valid version line, whole and
//! byte by byte: never panics, always ends up closing or waiting, and
//! holds at most its input cap.
#![no_main]

use std::time::Duration;

use braid::testing::{MemoryReactor, StringTransport};
use braid_cred::{InMemoryChecker, Portal};
use braid_ssh::{HostKey, ProcessAvatar, SshServer};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static KEY: String = {
        let k = HostKey::generate().unwrap();
        let p = std::env::temp_dir().join(format!("braid-fuzz-hostkey-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        k.save(&p).unwrap();
        std::fs::read_to_string(&p).unwrap()
    };
}

fn run(data: &[u8], chunk: usize) {
    let mr = MemoryReactor::new();
    let portal = Portal::new(mr.reactor(), |_: &str, _: ()| (ProcessAvatar::new(), None))
        .checker(InMemoryChecker::new().user("a", "b"));
    let key = KEY.with(|k| HostKey::from_openssh(k).unwrap());
    let server = SshServer::new(mr.reactor(), vec![key], portal);
    let st = StringTransport::with_reactor(mr.reactor());
    let t = st.transport();
    let mut p = server.connection();
    p.connection_made(&t);
    let mut input = b"SSH-2.0-fuzz\r\n".to_vec();
    input.extend_from_slice(data);
    for piece in input.chunks(chunk.max(1)) {
        p.data_received(&t, piece);
        mr.advance(Duration::ZERO);
        if st.is_disconnecting() {
            break;
        }
    }
    p.connection_lost(&braid::CloseReason::new(braid::CloseKind::Done));
}

fuzz_target!(|data: &[u8]| {
    run(data, data.len());
    run(data, 1);
});
