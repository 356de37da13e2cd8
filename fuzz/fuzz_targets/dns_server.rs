//! The DNS server's packet input: any bytes, over UDP and TCP, never
//! panic; what comes back parses as a response with the query's id, and
//! over UDP fits in 1232 bytes (512 without EDNS).
#![no_main]

use std::sync::OnceLock;

use braid_names::{Authority, Transport, Zone};
use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;

const ZONE: &str = "$TTL 300
@ IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60
  IN NS ns1
  IN MX 10 mail
ns1 IN A 192.0.2.53
mail IN A 192.0.2.25
www IN CNAME example.test.
loop1 IN CNAME loop2
loop2 IN CNAME loop1
*.wild IN A 192.0.2.99
*.wc IN CNAME loop1
sub IN NS ns.sub
ns.sub IN A 192.0.2.153
";

fn authority() -> &'static Authority {
    static A: OnceLock<Authority> = OnceLock::new();
    A.get_or_init(|| Authority::new().zone(Zone::parse("example.test.", ZONE, None).unwrap()))
}

fuzz_target!(|data: &[u8]| {
    for over in [Transport::Udp, Transport::Tcp] {
        let Some(out) = authority().answer(data, over) else { continue };
        let m = Message::from_vec(&out).expect("our answers parse");
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(&out[..2], &data[..2], "the query's id");
        if over == Transport::Udp {
            assert!(out.len() <= 1232, "{} bytes over UDP", out.len());
        }
    }
});
