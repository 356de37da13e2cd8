//! The DNS client's answer input: any bytes as the servers' answers (the
//! query's id and question patched in half the time, so the parser gets
//! past the checks), mixed with timeouts and TCP failures, never panic,
//! and the lookup always ends: an answer is records of the type asked.
#![no_main]

use std::time::{Duration, Instant};

use braid_names::client::{Lookup, Over, ResolvConf};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let conf = ResolvConf {
        search: vec!["corp.test".into()],
        attempts: 2,
        ..ResolvConf::with_nameservers(["192.0.2.1:53".parse().unwrap(), "192.0.2.2:53".parse().unwrap()])
    };
    let mut now = Instant::now();
    let mut lookup = Lookup::new("a", RecordType::A, &conf, Default::default(), now);
    let mut chunks = data.split(|b| *b == 0xfe);
    // Once the input is spent only timeouts come: the lookup must end
    // within a bounded number of them (tries x servers x names, plus the
    // EDNS and TCP retries).
    let mut timeouts_after_input = 0;
    let mut last: Option<(std::net::SocketAddr, Over, Vec<u8>)> = None;
    loop {
        while let Some(t) = lookup.poll_transmit() {
            last = Some((t.server, t.over, t.payload));
        }
        if let Some(outcome) = lookup.poll_outcome() {
            if let Ok(answer) = outcome {
                assert!(!answer.records.is_empty());
                assert!(answer.records.iter().all(|r| r.record_type() == RecordType::A));
            }
            break;
        }
        let Some((server, over, query)) = last.clone() else { break };
        match chunks.next() {
            None => {
                timeouts_after_input += 1;
                assert!(timeouts_after_input < 64, "a lookup ends");
                now = lookup.poll_timeout().expect("waiting for something");
                lookup.handle_timeout(now);
            }
            Some([0, ..]) => {
                now = lookup.poll_timeout().expect("waiting for something");
                lookup.handle_timeout(now);
            }
            Some([1, ..]) => lookup.handle_transport_error(over, now),
            Some(bytes) => {
                let mut bytes = bytes.to_vec();
                if bytes.first().is_some_and(|b| b & 1 == 1) {
                    // The real header and question, the fuzzer's records.
                    if let Ok(q) = Message::from_vec(&query) {
                        let mut m = Message::response(q.metadata.id, q.metadata.op_code);
                        m.add_queries(q.queries.iter().cloned());
                        m.metadata.truncation = bytes.get(1).is_some_and(|b| b & 1 == 1);
                        m.metadata.response_code = hickory_proto::op::ResponseCode::from(0, bytes.get(2).copied().unwrap_or(0) & 0x0f);
                        let mut head = m.to_vec().unwrap();
                        // Counts say what follows: the fuzzer's bytes.
                        if let Some(an) = bytes.get(3) {
                            head[7] = *an & 0x07;
                        }
                        head.extend_from_slice(bytes.get(4..).unwrap_or(&[]));
                        bytes = head;
                    }
                }
                lookup.handle_response(server, over, &bytes, now);
            }
        }
        now += Duration::from_millis(1);
    }
});
