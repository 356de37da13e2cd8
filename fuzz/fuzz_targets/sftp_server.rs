//! braid-ssh's SFTP server fed anything, whole and byte by byte: never
//! panics, answers the same either way, and ends the session on a
//! request over its cap. The root does not exist, so nothing touches
//! the disk.
#![no_main]

use braid::testing::StringTransport;
use braid::Protocol;
use braid_ssh::sftp::SftpServer;
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], chunk: usize) -> (Vec<u8>, bool) {
    let st = StringTransport::new();
    let t = st.transport();
    let mut s = SftpServer::new("/nonexistent/braid-fuzz-root");
    for piece in data.chunks(chunk.max(1)) {
        s.data_received(&t, piece);
    }
    (st.value(), st.is_disconnecting())
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, data.len());
    let bytes = run(data, 1);
    assert_eq!(whole, bytes);
});
