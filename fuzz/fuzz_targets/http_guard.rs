//! The HTTP request-framing guard: never panics; when it finds nothing
//! wrong it passes every byte unchanged (but an unfinished head it still
//! holds), whatever the split; when it finds
//! a violation it finds the same one however the input is split, and what
//! it passed is a prefix of the input; what it holds back stays bounded.
#![no_main]

use braid_web::fuzzing::guard;
use libfuzzer_sys::fuzz_target;

const MAX_HEAD: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let cut = cut as usize % (data.len() + 1);
    let (a, b) = data.split_at(cut);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    let runs = [guard(&[data], MAX_HEAD), guard(&[a, b], MAX_HEAD), guard(&bytes, MAX_HEAD)];
    for (out, err, held, left) in &runs {
        assert!(data.starts_with(out), "passed bytes that were not sent");
        if err.is_none() {
            assert_eq!(out.len() + left, data.len(), "lost bytes without a violation");
        }
        // An oversized head is handed over once it passes the limit;
        // chunk lines are capped at 4 KiB.
        assert!(*held <= MAX_HEAD.max(4096), "held {held}");
    }
    assert_eq!(runs[0].1, runs[1].1, "split in two");
    assert_eq!(runs[0].1, runs[2].1, "byte by byte");
});
