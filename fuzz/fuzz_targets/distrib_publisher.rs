//! braid-web's distributed-web publisher (Twisted's `ResourcePublisher`)
//! fed a PB connection: random bytes after a valid opening, and `request`
//! calls whose copied request (method, URI, headers, body, paths) comes
//! from the input. It never panics, answers or closes, and what it writes
//! back stays bounded.
#![no_main]

use std::time::Duration;

use braid::testing::{MemoryReactor, StringTransport};
use braid::{Address, Factory};
use braid_pb::banana::{to_bytes, Item};
use braid_pb::jelly::encode_value;
use braid_pb::Value;
use braid_web::distrib::{Publisher, REQUEST_TYPE};
use braid_web::{FnResource, Reply, Request, Response, Site};
use libfuzzer_sys::fuzz_target;

fn opening() -> Vec<u8> {
    let mut b = to_bytes(&Item::bytes("none"), false);
    b.extend(to_bytes(
        &Item::List(vec![Item::bytes("version"), Item::Int(braid_pb::VERSION)]),
        false,
    ));
    b
}

/// A `request` call whose state is made of the input's pieces.
fn request_call(id: i64, fields: &[&[u8]]) -> Vec<u8> {
    let f = |i: usize| fields.get(i).copied().unwrap_or(b"");
    let key = |k: &str| Value::str(k);
    let mut state = vec![
        (key("method"), Value::bytes(f(0))),
        (key("uri"), Value::bytes(f(1))),
        (
            key("requestHeaders"),
            Value::List(vec![Value::Tuple(vec![
                Value::bytes(f(2)),
                Value::List(vec![Value::bytes(f(3))]),
            ])]),
        ),
        (key("content_data"), Value::bytes(f(4))),
        (key("prepath"), Value::List(vec![Value::bytes(f(5))])),
        (
            key("postpath"),
            Value::List(vec![Value::bytes(f(6)), Value::bytes(f(7))]),
        ),
        (
            key("client"),
            Value::Tuple(vec![
                Value::str("INET"),
                Value::bytes(f(8)),
                Value::Int(f(9).len() as i64),
            ]),
        ),
    ];
    if f(10).first().is_some_and(|b| b & 1 == 1) {
        state.push((key("_forceSSL"), Value::Bool(true)));
    }
    let Ok(mut state) = encode_value(&Value::Dict(state)) else {
        return Vec::new();
    };
    // The remote request object: a reference to the caller's object 1.
    if let Item::List(items) = &mut state {
        items.push(Item::List(vec![
            Item::bytes("unicode"),
            Item::bytes("remote"),
        ]));
        items.push(Item::List(vec![Item::bytes("remote"), Item::Int(1)]));
        // Keep the dictionary's pairs whole: [key, value] as one list.
        let value = items.pop().unwrap();
        let k = items.pop().unwrap();
        items.push(Item::List(vec![k, value]));
    }
    let args = Item::List(vec![
        Item::bytes("tuple"),
        Item::List(vec![Item::bytes(REQUEST_TYPE), state]),
    ]);
    let kw = Item::List(vec![Item::bytes("dictionary")]);
    to_bytes(
        &Item::List(vec![
            Item::bytes("message"),
            Item::Int(id),
            Item::bytes("root"),
            Item::bytes("request"),
            Item::Int(1),
            args,
            kw,
        ]),
        false,
    )
}

fn run(chunks: &[&[u8]]) -> usize {
    let mr = MemoryReactor::new();
    let site = Site::new(FnResource::leaf(|mut req: Request| {
        Reply::later(async move {
            let body = req.read_body(1 << 16).await.unwrap_or_default();
            Response::text(format!("{} {} {}", req.method(), req.uri(), body.len()))
        })
    }));
    let mut factory = Publisher::new(mr.reactor(), site).factory();
    let mut p = factory
        .build_protocol(&Address::Memory("fuzz".into()))
        .unwrap();
    let st = StringTransport::with_reactor(mr.reactor());
    let t = st.transport();
    p.connection_made(&t);
    for c in chunks {
        p.data_received(&t, c);
        mr.advance(Duration::ZERO);
        if st.is_disconnecting() {
            break;
        }
    }
    mr.advance(Duration::from_secs(1));
    st.value().len()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = opening();
    if mode & 1 == 0 {
        input.extend_from_slice(rest);
    } else {
        // Calls made of the input's fields (split at 0xff), then the rest.
        let fields: Vec<&[u8]> = rest.split(|b| *b == 0xff).collect();
        for (i, call) in fields.chunks(11).enumerate() {
            input.extend(request_call(i as i64 + 1, call));
        }
    }
    let cut = usize::from(mode >> 1) % (input.len() + 1);
    let (a, b) = input.split_at(cut);
    let written = run(&[a, b]);
    // Answers and response calls: a few per request, each bounded by
    // what was received.
    assert!(
        written <= 64 * 1024 + 64 * input.len(),
        "{written} bytes written for {}",
        input.len()
    );
});
