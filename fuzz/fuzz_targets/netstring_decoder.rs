//! NetstringDecoder: never panics, never buffers past its cap once the
//! stream is broken, and is split-invariant.
#![no_main]

use braid::framing::NetstringDecoder;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 1000;

fn decode(pieces: &[&[u8]]) -> Vec<Result<Vec<u8>, ()>> {
    let mut d = NetstringDecoder::new(MAX);
    let mut out = Vec::new();
    'outer: for p in pieces {
        d.push(p);
        while let Some(r) = d.next_string() {
            let failed = r.is_err();
            out.push(r.map(|l| l.to_vec()).map_err(|_| ()));
            if failed {
                break 'outer;
            }
        }
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
    // Round trip: encoding each decoded string gives the consumed input.
    let mut re = Vec::new();
    for s in whole.iter().flatten() {
        re.extend(NetstringDecoder::encode(s));
    }
    assert!(data.starts_with(&re));
});
