//! The client's lookup state machine (sans-IO), against braid's own
//! authority as a pure function and against scripted servers: no sockets,
//! no clock.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid_names::client::{Cache, Lookup, Over, ResolvConf, ResolveErrorKind, Transmit};
use braid_names::{Authority, Transport, Zone};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const ZONE: &str = "\
$TTL 300
example.test. IN SOA ns1.example.test. hostmaster.example.test. ( 1 3600 600 86400 60 )
example.test. IN NS ns1.example.test.
example.test. IN MX 20 backup.example.test.
example.test. IN MX 10 mail.example.test.
ns1.example.test. IN A 192.0.2.53
mail.example.test. IN A 192.0.2.25
mail.example.test. IN AAAA 2001:db8::25
www.example.test. 60 IN CNAME mail.example.test.
alias.example.test. 30 IN CNAME www.example.test.
txt.example.test. IN TXT \"hello\" \" world\"
_sip._tcp.example.test. IN SRV 10 5 5060 ns1.example.test.
";

fn authority() -> Authority {
    let mut zone = ZONE.to_owned();
    // An answer too big for UDP: 30 TXT records of 100 bytes.
    for i in 0..30 {
        zone.push_str(&format!(
            "big.example.test. IN TXT \"{i:02}{}\"\n",
            "x".repeat(98)
        ));
    }
    Authority::new()
        .zone(Zone::parse("example.test.", &zone, None).unwrap())
        .zone(
            Zone::parse(
                "2.0.192.in-addr.arpa.",
                "2.0.192.in-addr.arpa. 300 IN SOA ns1.example.test. h.example.test. 1 3600 600 86400 60\n\
                 25.2.0.192.in-addr.arpa. 300 IN PTR mail.example.test.\n",
                None,
            )
            .unwrap(),
        )
}

const S1: &str = "192.0.2.1:53";
const S2: &str = "192.0.2.2:53";

fn conf(servers: &[&str]) -> ResolvConf {
    ResolvConf::with_nameservers(servers.iter().map(|s| s.parse().unwrap()))
}

/// Runs `lookup` to its end with `authority` answering every query: the
/// transmits it made.
fn drive(lookup: &mut Lookup, authority: &Authority, now: Instant) -> Vec<Transmit> {
    let mut sent = Vec::new();
    while let Some(t) = lookup.poll_transmit() {
        let over = match t.over {
            Over::Udp => Transport::Udp,
            Over::Tcp => Transport::Tcp,
        };
        if let Some(answer) = authority.answer(&t.payload, over) {
            lookup.handle_response(t.server, t.over, &answer, now);
        }
        sent.push(t);
    }
    sent
}

fn look(name: &str, t: RecordType, cache: &Rc<RefCell<Cache>>) -> (Lookup, Vec<Transmit>) {
    let now = Instant::now();
    let mut l = Lookup::new(name, t, &conf(&[S1]), cache.clone(), now);
    let sent = drive(&mut l, &authority(), now);
    (l, sent)
}

#[test]
fn every_common_type_is_answered() {
    let cache = Rc::default();
    let (mut l, sent) = look("mail.example.test", RecordType::A, &cache);
    let a = l.poll_outcome().unwrap().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].over, Over::Udp);
    assert!(matches!(&a.records[0].data, RData::A(ip) if ip.0.to_string() == "192.0.2.25"));

    // A CNAME chain is followed to its end (the answer's canonical name).
    let (mut l, _) = look("alias.example.test.", RecordType::AAAA, &cache);
    let a = l.poll_outcome().unwrap().unwrap();
    assert_eq!(a.canonical_name.to_string(), "mail.example.test.");
    assert_eq!(a.records.len(), 1);

    for (name, t, want) in [
        ("example.test", RecordType::MX, 2),
        ("example.test", RecordType::NS, 1),
        ("example.test", RecordType::SOA, 1),
        ("txt.example.test", RecordType::TXT, 1),
        ("_sip._tcp.example.test", RecordType::SRV, 1),
        ("www.example.test", RecordType::CNAME, 1),
        ("25.2.0.192.in-addr.arpa.", RecordType::PTR, 1),
    ] {
        let (mut l, _) = look(name, t, &cache);
        let a = l
            .poll_outcome()
            .unwrap()
            .unwrap_or_else(|e| panic!("{name} {t}: {e}"));
        assert_eq!(a.records.len(), want, "{name} {t}");
        assert!(a.records.iter().all(|r| r.record_type() == t));
    }
}

#[test]
fn negative_answers_are_typed_and_cached() {
    let cache: Rc<RefCell<Cache>> = Rc::default();
    let (mut l, sent) = look("nothing.example.test.", RecordType::A, &cache);
    let e = l.poll_outcome().unwrap().unwrap_err();
    assert_eq!(e.kind(), ResolveErrorKind::NxDomain);
    assert_eq!(
        e.to_string(),
        "nothing.example.test.: no such domain (NXDOMAIN)"
    );
    assert_eq!(sent.len(), 1);
    let (mut l, sent) = look("txt.example.test.", RecordType::MX, &cache);
    assert_eq!(
        l.poll_outcome().unwrap().unwrap_err().kind(),
        ResolveErrorKind::NoData
    );
    assert_eq!(sent.len(), 1);

    // Asked again: from the cache, nothing sent.
    for (name, t, kind) in [
        (
            "nothing.example.test.",
            RecordType::A,
            ResolveErrorKind::NxDomain,
        ),
        (
            "txt.example.test.",
            RecordType::MX,
            ResolveErrorKind::NoData,
        ),
    ] {
        let (mut l, sent) = look(name, t, &cache);
        assert!(sent.is_empty(), "{name} cached");
        assert_eq!(l.poll_outcome().unwrap().unwrap_err().kind(), kind);
    }
    let (_, sent) = look("mail.example.test.", RecordType::A, &cache);
    assert_eq!(sent.len(), 1);
    let (mut l, sent) = look("mail.example.test.", RecordType::A, &cache);
    assert!(sent.is_empty());
    assert!(l.poll_outcome().unwrap().unwrap().from_cache);
}

#[test]
fn negative_entries_last_the_soa_minimum() {
    let cache: Rc<RefCell<Cache>> = Rc::default();
    let now = Instant::now();
    let mut l = Lookup::new(
        "gone.example.test.",
        RecordType::A,
        &conf(&[S1]),
        cache.clone(),
        now,
    );
    drive(&mut l, &authority(), now);
    // SOA TTL 300, MINIMUM 60: 60 s.
    let later = now + Duration::from_secs(59);
    let mut again = Lookup::new(
        "gone.example.test.",
        RecordType::A,
        &conf(&[S1]),
        cache.clone(),
        later,
    );
    assert!(again.poll_transmit().is_none(), "still cached at 59 s");
    let later = now + Duration::from_secs(60);
    let mut again = Lookup::new(
        "gone.example.test.",
        RecordType::A,
        &conf(&[S1]),
        cache,
        later,
    );
    assert!(again.poll_transmit().is_some(), "asked again at 60 s");
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let cache = Rc::default();
    let (mut l, sent) = look("big.example.test.", RecordType::TXT, &cache);
    let a = l.poll_outcome().unwrap().unwrap();
    assert_eq!(a.records.len(), 30, "the whole answer");
    let overs: Vec<Over> = sent.iter().map(|t| t.over).collect();
    assert_eq!(overs, [Over::Udp, Over::Tcp]);
    assert_eq!(sent[1].server, sent[0].server);
}

#[test]
fn the_search_list_is_walked_past_refusals_and_nxdomain() {
    let now = Instant::now();
    let conf = ResolvConf {
        search: vec!["elsewhere.test".into(), "example.test".into()],
        ..conf(&[S1])
    };
    let mut l = Lookup::new("mail", RecordType::A, &conf, Rc::default(), now);
    let names: Vec<String> = l.candidates().iter().map(|n| n.to_string()).collect();
    assert_eq!(
        names,
        ["mail.elsewhere.test.", "mail.example.test.", "mail."]
    );
    let sent = drive(&mut l, &authority(), now);
    // elsewhere.test is refused (not braid's zone) on both rounds, then
    // example.test answers.
    assert_eq!(sent.len(), 3);
    let a = l.poll_outcome().unwrap().unwrap();
    assert_eq!(a.canonical_name.to_string(), "mail.example.test.");

    // Nothing anywhere: NXDOMAIN under example.test, REFUSED for the
    // other two: a refusal says the answer is unknown, so that is what is
    // reported, not NXDOMAIN.
    let mut l = Lookup::new("nope", RecordType::A, &conf, Rc::default(), now);
    drive(&mut l, &authority(), now);
    assert_eq!(
        l.poll_outcome().unwrap().unwrap_err().kind(),
        ResolveErrorKind::Refused
    );
}

/// A scripted server: answers every query with `f`'s message.
fn reply(t: &Transmit, f: impl FnOnce(&mut Message)) -> Vec<u8> {
    let q = Message::from_vec(&t.payload).unwrap();
    let mut m = Message::response(q.metadata.id, q.metadata.op_code);
    m.add_queries(q.queries.iter().cloned());
    f(&mut m);
    m.to_vec().unwrap()
}

#[test]
fn silence_means_retries_with_glibcs_back_off_then_a_timeout() {
    let start = Instant::now();
    let conf = ResolvConf {
        timeout: Duration::from_secs(4),
        attempts: 2,
        ..conf(&[S1, S2])
    };
    let mut l = Lookup::new("quiet.example.", RecordType::A, &conf, Rc::default(), start);
    let mut now = start;
    let mut log = Vec::new();
    while let Some(t) = l.poll_transmit() {
        let deadline = l.poll_timeout().unwrap();
        log.push((t.server.to_string(), (deadline - now).as_secs()));
        now = deadline;
        l.handle_timeout(now);
    }
    // Round 0: 4 s each; round 1: (4 << 1) / 2 = 4 s each.
    assert_eq!(
        log,
        [
            (S1.to_owned(), 4),
            (S2.to_owned(), 4),
            (S1.to_owned(), 4),
            (S2.to_owned(), 4)
        ]
    );
    let e = l.poll_outcome().unwrap().unwrap_err();
    assert_eq!(e.kind(), ResolveErrorKind::Timeout);
    assert!(l.is_done());
}

#[test]
fn spoofed_and_stray_answers_are_ignored() {
    let now = Instant::now();
    let mut l = Lookup::new(
        "a.example.",
        RecordType::A,
        &conf(&[S1]),
        Rc::default(),
        now,
    );
    let t = l.poll_transmit().unwrap();
    let good = reply(&t, |m| {
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            "a.example.".parse().unwrap(),
            60,
            RData::A("192.0.2.9".parse().unwrap()),
        ));
    });
    let other: SocketAddr = "198.51.100.1:53".parse().unwrap();
    l.handle_response(other, Over::Udp, &good, now);
    assert!(l.poll_outcome().is_none(), "from another address");
    let mut wrong_id = good.clone();
    wrong_id[0] ^= 0xff;
    l.handle_response(t.server, Over::Udp, &wrong_id, now);
    assert!(l.poll_outcome().is_none(), "another id");
    let mut not_response = good.clone();
    not_response[2] &= 0x7f;
    l.handle_response(t.server, Over::Udp, &not_response, now);
    l.handle_response(t.server, Over::Udp, b"\x00\x01garbage", now);
    assert!(l.poll_outcome().is_none(), "not an answer");
    l.handle_response(t.server, Over::Udp, &good, now);
    assert!(l.poll_outcome().unwrap().is_ok());
}

#[test]
fn an_old_server_gets_the_question_without_edns_and_servfail_moves_on() {
    let now = Instant::now();
    let mut l = Lookup::new(
        "a.example.",
        RecordType::A,
        &conf(&[S1, S2]),
        Rc::default(),
        now,
    );
    let t = l.poll_transmit().unwrap();
    assert!(
        Message::from_vec(&t.payload).unwrap().edns.is_some(),
        "EDNS0 offered"
    );
    let formerr = reply(&t, |m| m.metadata.response_code = ResponseCode::FormErr);
    l.handle_response(t.server, Over::Udp, &formerr, now);
    let t2 = l.poll_transmit().unwrap();
    assert_eq!(t2.server, t.server);
    assert!(
        Message::from_vec(&t2.payload).unwrap().edns.is_none(),
        "asked again without"
    );
    let servfail = reply(&t2, |m| m.metadata.response_code = ResponseCode::ServFail);
    l.handle_response(t2.server, Over::Udp, &servfail, now);
    let t3 = l.poll_transmit().unwrap();
    assert_eq!(t3.server.to_string(), S2, "the next server");
    assert!(Message::from_vec(&t3.payload).unwrap().edns.is_some());
    // Everything SERVFAILs: that is the error.
    let mut t = t3;
    loop {
        let sf = reply(&t, |m| m.metadata.response_code = ResponseCode::ServFail);
        l.handle_response(t.server, Over::Udp, &sf, now);
        match l.poll_transmit() {
            Some(next) => t = next,
            None => break,
        }
    }
    assert_eq!(
        l.poll_outcome().unwrap().unwrap_err().kind(),
        ResolveErrorKind::ServFail
    );
    let q = Message::from_vec(&t.payload).unwrap();
    assert_eq!(q.metadata.message_type, MessageType::Query);
}

#[test]
fn a_tcp_failure_moves_to_the_next_server() {
    let now = Instant::now();
    let conf = ResolvConf {
        use_tcp: true,
        ..conf(&[S1, S2])
    };
    let mut l = Lookup::new("a.example.", RecordType::A, &conf, Rc::default(), now);
    let t = l.poll_transmit().unwrap();
    assert_eq!(t.over, Over::Tcp);
    l.handle_transport_error(Over::Tcp, now);
    let t = l.poll_transmit().unwrap();
    assert_eq!((t.server.to_string(), t.over), (S2.to_owned(), Over::Tcp));
    // A bad TCP answer fails that server too (no waiting for the timeout).
    l.handle_response(t.server, Over::Tcp, b"junk", now);
    assert_eq!(l.poll_transmit().unwrap().server.to_string(), S1);
}

#[test]
fn bad_names_and_no_servers_fail_at_once() {
    let now = Instant::now();
    let mut l = Lookup::new("a..b", RecordType::A, &conf(&[S1]), Rc::default(), now);
    assert_eq!(
        l.poll_outcome().unwrap().unwrap_err().kind(),
        ResolveErrorKind::BadName
    );
    let long = format!("{}.example", "x".repeat(64));
    let mut l = Lookup::new(&long, RecordType::A, &conf(&[S1]), Rc::default(), now);
    assert_eq!(
        l.poll_outcome().unwrap().unwrap_err().kind(),
        ResolveErrorKind::BadName
    );
    let mut l = Lookup::new("a.example", RecordType::A, &conf(&[]), Rc::default(), now);
    assert_eq!(
        l.poll_outcome().unwrap().unwrap_err().kind(),
        ResolveErrorKind::Io
    );
    assert!(l.poll_transmit().is_none());
}
