//! The DNS server's stream side over the in-memory transport: pipelined,
//! length-framed queries fed whole and byte by byte, and the idle timeout
//! on the fake clock.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{connected_pair, MemoryReactor};
use braid::{Address, Factory, Protocol, Transport};
use braid_names::{Authority, DnsServer, Zone};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

const ZONE: &str =
    "$TTL 60\nexample.test. IN SOA ns.example.test. h.example.test. 1 3600 600 86400 60\n\
                    example.test. IN A 192.0.2.1\nwww.example.test. IN A 192.0.2.2\n";

#[derive(Default)]
struct Heard {
    data: RefCell<Vec<u8>>,
    closed: RefCell<bool>,
}
struct Client(Rc<Heard>);
impl Protocol for Client {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.data.borrow_mut().extend_from_slice(data);
    }
    fn read_eof(&mut self, _: &Transport) {
        *self.0.closed.borrow_mut() = true;
    }
    fn connection_lost(&mut self, _: &braid::CloseReason) {
        *self.0.closed.borrow_mut() = true;
    }
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let body = m.to_vec().unwrap();
    let mut framed = (body.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    framed
}

/// The frames in `bytes`, parsed.
fn answers(bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        assert!(rest.len() >= 2 + len, "whole frames only");
        out.push(Message::from_vec(&rest[2..2 + len]).unwrap());
        rest = &rest[2 + len..];
    }
    assert!(rest.is_empty());
    out
}

#[test]
fn pipelined_queries_whole_and_byte_by_byte_then_the_idle_timeout() {
    for chunk in [0usize, 1] {
        let mr = MemoryReactor::new();
        let zone = Zone::parse("example.test.", ZONE, None).unwrap();
        let server = DnsServer::new(mr.reactor(), Authority::new().zone(zone));
        let heard = Rc::new(Heard::default());
        let mut factory = server.stream_factory();
        let protocol = factory
            .build_protocol(&Address::Memory("c".into()))
            .unwrap();
        let pair = connected_pair(mr.reactor(), protocol, Client(heard.clone()));
        let settle = || {
            for _ in 0..20 {
                pair.pump();
                mr.reactor().iterate(Duration::ZERO).unwrap();
            }
        };
        settle();
        let mut bytes = query(1, "example.test.");
        bytes.extend(query(2, "www.example.test."));
        bytes.extend(query(3, "none.example.test."));
        let size = if chunk == 0 { bytes.len() } else { chunk };
        for piece in bytes.chunks(size) {
            pair.client().write(piece);
            settle();
        }
        let got = answers(&heard.data.borrow());
        let ids: Vec<u16> = got.iter().map(|m| m.metadata.id).collect();
        assert_eq!(ids, [1, 2, 3], "chunk {chunk}: in order");
        assert_eq!(got[0].answers.len(), 1);
        assert_eq!(got[1].answers.len(), 1);
        assert_eq!(got[2].metadata.response_code, ResponseCode::NXDomain);
        assert!(!*heard.closed.borrow());
        mr.advance(Duration::from_secs(9));
        settle();
        assert!(
            !*heard.closed.borrow(),
            "chunk {chunk}: not idle long enough"
        );
        mr.advance(Duration::from_secs(1));
        settle();
        assert!(
            *heard.closed.borrow(),
            "chunk {chunk}: closed after 10 s idle"
        );
    }
}
