//! PrefixedDecoder for every prefix width: no panics, caps honoured,
//! split-invariant, and a faithful round trip.
#![no_main]

use braid::framing::{Prefix, PrefixedDecoder};
use libfuzzer_sys::fuzz_target;

fn decode(prefix: Prefix, pieces: &[&[u8]]) -> Vec<Result<Vec<u8>, ()>> {
    let mut d = PrefixedDecoder::new(prefix, 300);
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
    let Some((&sel, data)) = data.split_first() else { return };
    let prefix = [Prefix::U8, Prefix::U16, Prefix::U32][sel as usize % 3];
    let cut = (sel as usize / 3) % (data.len() + 1);
    let whole = decode(prefix, &[data]);
    let (a, b) = data.split_at(cut);
    assert_eq!(whole, decode(prefix, &[a, b]));
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(whole, decode(prefix, &bytes));
    let enc = PrefixedDecoder::new(prefix, 300);
    let mut re = Vec::new();
    for s in whole.iter().flatten() {
        re.extend(enc.encode(s).unwrap());
    }
    assert!(data.starts_with(&re));
});
