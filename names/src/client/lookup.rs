//! One lookup as a state machine (sans-IO): the question in, datagrams
//! and TCP exchanges out, answers and timeouts in, an [`Answer`] or a
//! [`ResolveError`] out. No sockets, no clock: the driver
//! ([`Resolver`](super::Resolver)) or a test moves it.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::cache::{Cache, Cached};
use super::config::ResolvConf;

/// The UDP size braid's client offers in EDNS0 (DNS flag day 2020).
pub const EDNS_UDP_SIZE: u16 = 1232;

/// CNAMEs followed inside one answer before giving up on a loop.
const MAX_CNAME_CHAIN: usize = 16;

/// What went wrong with a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResolveErrorKind {
    /// The name does not exist (NXDOMAIN), with every search domain.
    NxDomain,
    /// The name exists but has no records of the type asked (NODATA).
    NoData,
    /// The servers could not answer (SERVFAIL).
    ServFail,
    /// The servers refused to answer (REFUSED).
    Refused,
    /// No server answered in time, every attempt.
    Timeout,
    /// The name is not a valid domain name.
    BadName,
    /// No server to ask, or no socket to ask from.
    Io,
}

/// Why a lookup failed: its kind and the name asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    kind: ResolveErrorKind,
    name: String,
    detail: Option<String>,
}

impl ResolveError {
    /// An error of `kind` for `name`.
    pub fn new(kind: ResolveErrorKind, name: impl Into<String>) -> ResolveError {
        ResolveError {
            kind,
            name: name.into(),
            detail: None,
        }
    }

    fn with_detail(mut self, detail: impl Into<String>) -> ResolveError {
        self.detail = Some(detail.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ResolveErrorKind {
        self.kind
    }

    /// The name that was asked for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name does not exist, or has nothing of the type: an answer, not
    /// a failure to get one (what a caller should not retry soon).
    pub fn is_negative(&self) -> bool {
        matches!(
            self.kind,
            ResolveErrorKind::NxDomain | ResolveErrorKind::NoData
        )
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ResolveErrorKind::NxDomain => "no such domain (NXDOMAIN)",
            ResolveErrorKind::NoData => "no records of that type (NODATA)",
            ResolveErrorKind::ServFail => "the server failed (SERVFAIL)",
            ResolveErrorKind::Refused => "the server refused (REFUSED)",
            ResolveErrorKind::Timeout => "no answer from any server",
            ResolveErrorKind::BadName => "not a valid domain name",
            ResolveErrorKind::Io => "cannot ask",
        };
        write!(f, "{}: {what}", self.name)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ResolveError {}

impl From<ResolveError> for io::Error {
    /// NXDOMAIN and NODATA are `NotFound`, a timeout `TimedOut`; the
    /// `ResolveError` stays inside.
    fn from(e: ResolveError) -> io::Error {
        let kind = match e.kind {
            ResolveErrorKind::NxDomain | ResolveErrorKind::NoData => io::ErrorKind::NotFound,
            ResolveErrorKind::Timeout => io::ErrorKind::TimedOut,
            ResolveErrorKind::BadName => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// A lookup's answer: the records of the type asked, at the end of any
/// CNAME chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The name the records belong to after CNAMEs (the name asked, with
    /// the search domain that found it, when there were none).
    pub canonical_name: Name,
    /// The records; never empty (no records is [`ResolveErrorKind::NoData`]).
    pub records: Vec<Record>,
    /// The answer came from the cache.
    pub from_cache: bool,
}

/// How a query goes to its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// A datagram.
    Udp,
    /// A TCP connection, the message behind a two-byte length.
    Tcp,
}

/// A query to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The server.
    pub server: SocketAddr,
    /// UDP, or TCP (open a connection, send, read one framed answer).
    pub over: Over,
    /// The DNS message (no TCP length prefix).
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Outstanding {
    id: u16,
    server: SocketAddr,
    over: Over,
    edns: bool,
    payload: Vec<u8>,
    deadline: Instant,
}

/// A lookup in progress.
///
/// ```text
///   new(name, type, conf, cache, now)
///     for each candidate name (the search list, by ndots)
///       cached?  answer / NXDOMAIN / NODATA from the cache
///       for round in 0..attempts, for server in servers:
///         poll_transmit() -> UDP query (EDNS0, random id)   [or TCP with use-vc]
///         handle_response(..)  TC -> the same query over TCP to that server
///                              FORMERR/NOTIMP to EDNS -> again without it
///                              SERVFAIL/REFUSED -> the next server
///                              NXDOMAIN/NODATA -> the next candidate name
///         handle_timeout(now) at poll_timeout() -> the next server
///   poll_outcome() -> Ok(Answer) | Err(NxDomain | NoData | ServFail | Refused | Timeout ..)
/// ```
#[derive(Debug)]
pub struct Lookup {
    asked: String,
    qtype: RecordType,
    candidates: Vec<Name>,
    index: usize,
    servers: Vec<SocketAddr>,
    rounds: usize,
    timeout: Duration,
    edns: bool,
    use_tcp: bool,
    /// Servers that answered FORMERR/NOTIMP to EDNS.
    no_edns: Vec<SocketAddr>,
    /// Tries made for the current candidate: round * servers + server.
    tried: usize,
    /// The worst answer a server of this candidate gave (SERVFAIL over
    /// REFUSED); `None`: none answered.
    failure: Option<ResolveErrorKind>,
    saw_nodata: bool,
    saw_servfail: bool,
    saw_refused: bool,
    cache: Rc<RefCell<Cache>>,
    outstanding: Option<Outstanding>,
    transmits: VecDeque<Transmit>,
    outcome: Option<Result<Answer, ResolveError>>,
    random: RandomState,
    count: u64,
}

impl Lookup {
    /// Starts looking up `name` (`qtype` records) with `conf`'s servers,
    /// search list and timeouts, `cache` consulted and filled.
    pub fn new(
        name: &str,
        qtype: RecordType,
        conf: &ResolvConf,
        cache: Rc<RefCell<Cache>>,
        now: Instant,
    ) -> Lookup {
        let mut lookup = Lookup {
            asked: name.to_owned(),
            qtype,
            candidates: Vec::new(),
            index: 0,
            servers: conf.nameservers.clone(),
            rounds: conf.attempts.max(1).into(),
            timeout: conf.timeout,
            edns: conf.edns,
            use_tcp: conf.use_tcp,
            no_edns: Vec::new(),
            tried: 0,
            failure: None,
            saw_nodata: false,
            saw_servfail: false,
            saw_refused: false,
            cache,
            outstanding: None,
            transmits: VecDeque::new(),
            outcome: None,
            random: RandomState::new(),
            count: 0,
        };
        match candidates(name, conf) {
            Ok(c) if !c.is_empty() => lookup.candidates = c,
            Ok(_) => lookup.fail(ResolveErrorKind::BadName, None),
            Err(e) => lookup.fail(ResolveErrorKind::BadName, Some(e)),
        }
        if lookup.outcome.is_none() && lookup.servers.is_empty() {
            lookup.fail(ResolveErrorKind::Io, Some("no name servers".into()));
        }
        if lookup.outcome.is_none() {
            lookup.start_candidate(now);
        }
        lookup
    }

    /// The names that will be (or were) tried, in order.
    pub fn candidates(&self) -> &[Name] {
        &self.candidates
    }

    /// The next query to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.deadline)
    }

    /// The result, once there is one (taken: `None` afterwards).
    pub fn poll_outcome(&mut self) -> Option<Result<Answer, ResolveError>> {
        self.outcome.take()
    }

    /// The lookup is over (its outcome may have been taken).
    pub fn is_done(&self) -> bool {
        self.outstanding.is_none() && self.transmits.is_empty()
    }

    /// The server being asked does not answer in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outstanding.as_ref().is_some_and(|o| now >= o.deadline) {
            self.outstanding = None;
            self.tried += 1;
            self.send(now);
        }
    }

    /// The query could not be sent, or its TCP connection failed or closed
    /// before the answer: the next server is asked.
    pub fn handle_transport_error(&mut self, over: Over, now: Instant) {
        if self.outstanding.as_ref().is_some_and(|o| o.over == over) {
            self.outstanding = None;
            self.tried += 1;
            self.send(now);
        }
    }

    /// A message came back from `from` (over UDP: anything not from the
    /// server asked, or not answering the question asked, is ignored, as
    /// a spoofing attempt would be).
    pub fn handle_response(&mut self, from: SocketAddr, over: Over, bytes: &[u8], now: Instant) {
        let Some(out) = &self.outstanding else {
            return;
        };
        if out.over != over || (over == Over::Udp && from != out.server) {
            return;
        }
        let message = match Message::from_vec(bytes) {
            Ok(m) if self.answers(out, &m) => m,
            _ if over == Over::Tcp => {
                // A TCP answer is the server's whole word: a bad one fails
                // this server.
                return self.handle_transport_error(Over::Tcp, now);
            }
            _ => return,
        };
        let out = self.outstanding.take().expect("outstanding");
        if message.metadata.truncation && over == Over::Udp {
            // RFC 7766: the same question again over TCP, whole.
            self.resend(out.server, Over::Tcp, out.edns, now);
            return;
        }
        let rcode = message.metadata.response_code;
        match rcode {
            ResponseCode::NoError | ResponseCode::NXDomain => self.conclude(&message, now),
            ResponseCode::FormErr | ResponseCode::NotImp if out.edns => {
                // An old server that does not take EDNS0 (RFC 6891 s7).
                self.no_edns.push(out.server);
                self.resend(out.server, out.over, false, now);
            }
            ResponseCode::Refused => {
                self.failure.get_or_insert(ResolveErrorKind::Refused);
                self.tried += 1;
                self.send(now);
            }
            _ => {
                self.failure = Some(ResolveErrorKind::ServFail);
                self.tried += 1;
                self.send(now);
            }
        }
    }

    /// Whether `m` answers the question `out` asked.
    fn answers(&self, out: &Outstanding, m: &Message) -> bool {
        let name = &self.candidates[self.index];
        m.metadata.id == out.id
            && m.metadata.message_type == MessageType::Response
            && m.queries.len() == 1
            && m.queries[0].query_type() == self.qtype
            && LowerName::from(m.queries[0].name()) == LowerName::from(name)
    }

    fn fail(&mut self, kind: ResolveErrorKind, detail: Option<String>) {
        let mut e = ResolveError::new(kind, self.asked.clone());
        if let Some(d) = detail {
            e = e.with_detail(d);
        }
        self.outstanding = None;
        self.transmits.clear();
        self.outcome = Some(Err(e));
    }

    /// Tries the current candidate name: from the cache, or the servers.
    fn start_candidate(&mut self, now: Instant) {
        while let Some(name) = self.candidates.get(self.index) {
            let key = LowerName::from(name);
            let cached = self.cache.borrow_mut().get(&key, self.qtype, now);
            match cached {
                Some(Cached::Records(records, canonical)) => {
                    self.outcome = Some(Ok(Answer {
                        canonical_name: Name::from(canonical),
                        records,
                        from_cache: true,
                    }));
                    return;
                }
                Some(Cached::NoData) => self.saw_nodata = true,
                Some(Cached::NxDomain) => {}
                None => {
                    self.tried = 0;
                    self.failure = None;
                    self.send(now);
                    return;
                }
            }
            self.index += 1;
        }
        self.finish_negative();
    }

    /// Every candidate was tried: the most telling negative.
    fn finish_negative(&mut self) {
        let kind = if self.saw_nodata {
            ResolveErrorKind::NoData
        } else if self.saw_servfail {
            ResolveErrorKind::ServFail
        } else if self.saw_refused {
            ResolveErrorKind::Refused
        } else {
            ResolveErrorKind::NxDomain
        };
        self.fail(kind, None);
    }

    /// Asks the next server for the current candidate, or moves on when
    /// every try is spent.
    fn send(&mut self, now: Instant) {
        let n = self.servers.len();
        if self.tried >= self.rounds * n {
            match self.failure {
                // glibc: a timeout ends the search; a server failure moves
                // on to the next search domain.
                None => {
                    let tries = self.rounds * n;
                    return self.fail(
                        ResolveErrorKind::Timeout,
                        Some(format!("{tries} tries to {n} server(s)")),
                    );
                }
                Some(ResolveErrorKind::Refused) => self.saw_refused = true,
                Some(_) => self.saw_servfail = true,
            }
            self.index += 1;
            return self.start_candidate(now);
        }
        let server = self.servers[self.tried % n];
        let edns = self.edns && !self.no_edns.contains(&server);
        let over = if self.use_tcp { Over::Tcp } else { Over::Udp };
        self.resend(server, over, edns, now);
    }

    fn resend(&mut self, server: SocketAddr, over: Over, edns: bool, now: Instant) {
        let id = self.next_id();
        let name = self.candidates[self.index].clone();
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        let mut q = Query::query(name, self.qtype);
        q.set_query_class(DNSClass::IN);
        m.add_query(q);
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(EDNS_UDP_SIZE);
            m.set_edns(e);
        }
        let payload = match m.to_vec() {
            Ok(p) => p,
            Err(e) => return self.fail(ResolveErrorKind::BadName, Some(e.to_string())),
        };
        // glibc's back-off: the first round waits `timeout` for each
        // server; round r waits (timeout << r) / servers, at least 1 s.
        let round = (self.tried / self.servers.len()) as u32;
        let wait = if round == 0 {
            self.timeout
        } else {
            (self.timeout * (1 << round.min(8)) / self.servers.len() as u32)
                .max(Duration::from_secs(1))
        };
        self.transmits.push_back(Transmit {
            server,
            over,
            payload: payload.clone(),
        });
        self.outstanding = Some(Outstanding {
            id,
            server,
            over,
            edns,
            payload,
            deadline: now + wait,
        });
    }

    /// A NOERROR or NXDOMAIN answer for the current candidate.
    fn conclude(&mut self, m: &Message, now: Instant) {
        let asked = LowerName::from(&self.candidates[self.index]);
        let mut cache = self.cache.borrow_mut();
        let negative_ttl = negative_ttl(m);
        if m.metadata.response_code == ResponseCode::NXDomain {
            if let Some(ttl) = negative_ttl {
                cache.put(&asked, self.qtype, Cached::NxDomain, ttl, now);
            }
            drop(cache);
            self.index += 1;
            return self.start_candidate(now);
        }
        let (canonical, records, ttl) = follow(m, &asked, self.qtype);
        if records.is_empty() {
            if let Some(ttl) = negative_ttl {
                cache.put(&asked, self.qtype, Cached::NoData, ttl, now);
            }
            drop(cache);
            self.saw_nodata = true;
            self.index += 1;
            return self.start_candidate(now);
        }
        cache.put(
            &asked,
            self.qtype,
            Cached::Records(records.clone(), canonical.clone()),
            Duration::from_secs(ttl.into()),
            now,
        );
        self.outcome = Some(Ok(Answer {
            canonical_name: Name::from(canonical),
            records,
            from_cache: false,
        }));
    }

    fn next_id(&mut self) -> u16 {
        self.count += 1;
        let mut h = self.random.build_hasher();
        h.write_u64(self.count);
        h.finish() as u16
    }

    /// The query of the request in flight (what a test hands a server).
    pub fn outstanding_payload(&self) -> Option<&[u8]> {
        self.outstanding.as_ref().map(|o| &o.payload[..])
    }
}

/// The candidate names for `name` under `conf`'s search list and ndots
/// (resolv.conf(5)).
fn candidates(name: &str, conf: &ResolvConf) -> Result<Vec<Name>, String> {
    let parsed = Name::from_utf8(name).map_err(|e| e.to_string())?;
    if parsed.is_root() {
        return Err("the root is not a host".into());
    }
    let mut absolute = parsed.clone();
    absolute.set_fqdn(true);
    if parsed.is_fqdn() {
        return Ok(vec![absolute]);
    }
    let dots = name.matches('.').count();
    let searched = conf.search.iter().filter_map(|d| {
        let d = Name::from_utf8(d).ok()?;
        parsed.clone().append_domain(&d).ok().map(|mut n| {
            n.set_fqdn(true);
            n
        })
    });
    let mut out: Vec<Name> = Vec::new();
    if dots >= conf.ndots as usize {
        out.push(absolute);
        out.extend(searched);
    } else {
        out.extend(searched);
        out.push(absolute);
    }
    out.dedup();
    Ok(out)
}

/// The records of `qtype` for `asked`, following CNAMEs within the
/// answer; the name they are at and the smallest TTL on the way.
fn follow(m: &Message, asked: &LowerName, qtype: RecordType) -> (LowerName, Vec<Record>, u32) {
    let mut name = asked.clone();
    let mut ttl = u32::MAX;
    for _ in 0..MAX_CNAME_CHAIN {
        let found: Vec<Record> = m
            .answers
            .iter()
            .filter(|r| r.record_type() == qtype && LowerName::from(&r.name) == name)
            .cloned()
            .collect();
        if !found.is_empty() {
            let least = found.iter().map(|r| r.ttl).min().unwrap_or(0);
            return (name, found, ttl.min(least));
        }
        let cname = m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if LowerName::from(&r.name) == name => Some((target, r.ttl)),
            _ => None,
        });
        match cname {
            Some((target, t)) => {
                name = LowerName::from(&target.0);
                ttl = ttl.min(t);
            }
            None => break,
        }
    }
    (name, Vec::new(), 0)
}

/// RFC 2308: a negative answer is kept for the SOA's TTL or its MINIMUM,
/// whichever is less; without a SOA it is not kept.
fn negative_ttl(m: &Message) -> Option<Duration> {
    m.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(Duration::from_secs(r.ttl.min(soa.minimum).into())),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order_follows_ndots() {
        let conf = ResolvConf {
            search: vec!["corp.example".into(), "example.org".into()],
            ndots: 1,
            ..ResolvConf::default()
        };
        let names = |n: &str| -> Vec<String> {
            candidates(n, &conf)
                .unwrap()
                .iter()
                .map(|n| n.to_string())
                .collect()
        };
        assert_eq!(
            names("www"),
            ["www.corp.example.", "www.example.org.", "www."]
        );
        assert_eq!(
            names("www.example.net"),
            [
                "www.example.net.",
                "www.example.net.corp.example.",
                "www.example.net.example.org."
            ]
        );
        assert_eq!(names("www.example.net."), ["www.example.net."]);
        assert!(candidates("bad..name", &conf).is_err());
        assert!(candidates(".", &conf).is_err());
    }

    #[test]
    fn ids_differ() {
        let mut l = Lookup::new(
            "a.example.",
            RecordType::A,
            &ResolvConf::default(),
            Rc::default(),
            Instant::now(),
        );
        let ids: std::collections::HashSet<u16> = (0..64).map(|_| l.next_id()).collect();
        assert!(ids.len() > 60, "random ids, not a counter");
    }
}
