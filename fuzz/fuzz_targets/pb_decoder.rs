//! PB's banana decoder and jelly: never panics or overflows the stack,
//! gives the same items however the input is split, and what decodes
//! re-encodes to the same values.
#![no_main]

use braid_pb::banana::{self, Decoder, Item};
use braid_pb::jelly;
use libfuzzer_sys::fuzz_target;

fn decode(pieces: &[&[u8]]) -> (Vec<Item>, bool) {
    let mut d = Decoder::new();
    d.set_vocab(true);
    d.set_limits(50, 1 << 20);
    let mut out = Vec::new();
    for p in pieces {
        d.feed(p);
        loop {
            match d.next_item() {
                Ok(Some(i)) => out.push(i),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// Items compared by their encoding (bit-exact, so NaN equals itself).
fn encoded(r: &(Vec<Item>, bool)) -> (Vec<Vec<u8>>, bool) {
    (r.0.iter().map(|i| banana::to_bytes(i, true)).collect(), r.1)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let cut = cut as usize % (data.len() + 1);
    let whole = decode(&[data]);
    let (a, b) = data.split_at(cut);
    assert_eq!(encoded(&whole), encoded(&decode(&[a, b])));
    for item in whole.0 {
        let Ok(value) = jelly::decode_value(item) else { continue };
        let again = jelly::encode_value(&value).expect("decoded data re-encodes");
        let bytes = banana::to_bytes(&again, true);
        let (items, failed) = decode(&[&bytes]);
        assert!(!failed && items.len() == 1);
        let back = jelly::decode_value(items.into_iter().next().unwrap()).expect("round trip");
        assert_eq!(back, value);
    }
});
