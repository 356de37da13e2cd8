//! The SOCKS server handshake: never panics, decides the same whole and
//! byte by byte, and never holds more than its cap.
#![no_main]

use braid_proxy::socks::handshake::{Handshake, Step, MAX_HANDSHAKE};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], auth: bool, bytewise: bool) -> Vec<Step> {
    let mut h = Handshake::new(auth);
    let mut steps = Vec::new();
    let chunks: Vec<&[u8]> = if bytewise { data.chunks(1).collect() } else { vec![data] };
    'outer: for c in chunks {
        h.feed(c);
        loop {
            let s = h.step();
            match &s {
                Step::NeedMore => break,
                Step::Auth { user, .. } => {
                    let ok = user.len() % 2 == 0;
                    steps.push(s.clone());
                    let r = h.auth_done(ok);
                    let refused = matches!(r, Step::Refuse(..));
                    steps.push(r);
                    if refused {
                        break 'outer;
                    }
                }
                Step::Connect { .. } | Step::Refuse(..) => {
                    steps.push(s);
                    break 'outer;
                }
                _ => steps.push(s),
            }
        }
    }
    assert!(h.take_rest().len() <= data.len().min(MAX_HANDSHAKE + 1 + data.len()));
    steps
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else { return };
    let auth = flags & 1 == 1;
    assert_eq!(run(data, auth, false), run(data, auth, true), "whole and byte by byte differ");
});
