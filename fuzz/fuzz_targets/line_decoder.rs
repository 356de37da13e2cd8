//! LineDecoder: never panics, never buffers past its cap, and gives the
//! same lines however the input is split.
#![no_main]

use braid::framing::LineDecoder;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64;

fn decode(pieces: &[&[u8]]) -> Vec<Result<Vec<u8>, ()>> {
    let mut d = LineDecoder::new(b"\r\n", MAX);
    let mut out = Vec::new();
    for p in pieces {
        d.push(p);
        while let Some(r) = d.next_line() {
            out.push(r.map(|l| l.to_vec()).map_err(|_| ()));
        }
        assert!(d.buffered() <= MAX + 1, "buffered {}", d.buffered());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let cut = cut as usize % (data.len() + 1);
    let whole = decode(&[data]);
    let (a, b) = data.split_at(cut);
    assert_eq!(whole, decode(&[a, b]));
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(whole, decode(&bytes));
});
