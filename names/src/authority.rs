//! Authoritative answers from zones, as a pure function: query bytes in,
//! answer bytes out (Twisted's `names.authority`, without its
//! transports). No sockets, no reactor.
//!
//! ```text
//!   query bytes ─▶ parse (FORMERR, or dropped if not even a header)
//!       ─▶ the zone it falls in (REFUSED outside: no open resolver)
//!       ─▶ records: the answer / CNAME chased in zone / NODATA / NXDOMAIN (SOA in authority)
//!       ─▶ additionals (A/AAAA of MX, NS and SRV targets in zone)
//!       ─▶ encode; over UDP cut to 512 bytes or the client's EDNS size with TC set
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;

/// The largest UDP answer braid sends, whatever a client's EDNS says
/// (the DNS flag day 2020 size: no fragmentation).
pub const MAX_UDP: usize = 1232;

/// One zone: its origin and records, from an RFC 1035 master file.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: LowerName,
    records: BTreeMap<RrKey, RecordSet>,
    /// The types each name has.
    types: HashMap<LowerName, Vec<RecordType>>,
    /// Every name with records, and every name between one and the
    /// origin (empty non-terminals answer NODATA, not NXDOMAIN).
    exists: HashSet<LowerName>,
}

/// A zone file that does not parse.
#[derive(Debug)]
pub struct ZoneError(String);

impl std::fmt::Display for ZoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ZoneError {}

impl Zone {
    /// Parses a master file for `origin` (used for `@` and relative
    /// names, unless the file sets `$ORIGIN`).
    ///
    /// # Errors
    ///
    /// The file does not parse, or has no SOA at its origin.
    pub fn parse(origin: &str, text: &str, path: Option<&Path>) -> Result<Zone, ZoneError> {
        let origin =
            Name::from_ascii(origin).map_err(|e| ZoneError(format!("origin {origin:?}: {e}")))?;
        let (origin, records) = Parser::new(text, path.map(Path::to_owned), Some(origin))
            .parse()
            .map_err(|e| ZoneError(e.to_string()))?;
        let origin = LowerName::from(&origin);
        let mut types: HashMap<LowerName, Vec<RecordType>> = HashMap::new();
        let mut exists = HashSet::new();
        for k in records.keys() {
            types.entry(k.name.clone()).or_default().push(k.record_type);
            let mut n = k.name.clone();
            while origin.zone_of(&n) && exists.insert(n.clone()) && n != origin {
                n = n.base_name();
            }
        }
        let zone = Zone {
            origin,
            records,
            types,
            exists,
        };
        if zone.soa().is_none() {
            return Err(ZoneError(format!(
                "zone {}: no SOA record at the origin",
                zone.origin
            )));
        }
        Ok(zone)
    }

    /// Reads and parses a master file.
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not parse.
    pub fn load(origin: &str, path: &Path) -> Result<Zone, ZoneError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ZoneError(format!("{}: {e}", path.display())))?;
        Zone::parse(origin, &text, Some(path))
    }

    /// The zone's origin.
    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    fn soa(&self) -> Option<&Record> {
        self.rrset(&self.origin, RecordType::SOA)
            .and_then(|s| s.records_without_rrsigs().next())
    }

    fn rrset(&self, name: &LowerName, t: RecordType) -> Option<&RecordSet> {
        self.records.get(&RrKey {
            name: name.clone(),
            record_type: t,
        })
    }

    /// Whether `name` has records, or names below it do.
    fn has_name_or_below(&self, name: &LowerName) -> bool {
        self.exists.contains(name)
    }

    /// The delegation `name` falls under: the nearest name at or above it,
    /// below the origin, with NS records. A DS question at the cut itself
    /// belongs to the parent (RFC 4035 3.1.4.1).
    fn cut_for(&self, name: &LowerName, qtype: RecordType) -> Option<LowerName> {
        let mut n = name.clone();
        while n != self.origin && self.origin.zone_of(&n) {
            let is_cut = self
                .types
                .get(&n)
                .is_some_and(|t| t.contains(&RecordType::NS));
            if is_cut && !(n == *name && qtype == RecordType::DS) {
                return Some(n);
            }
            n = n.base_name();
        }
        None
    }

    /// The wildcard that answers for `name`, which does not exist: `*.`
    /// and its closest encloser (its nearest existing ancestor), if the
    /// zone has it (RFC 4592 3.3.1).
    fn wildcard_for(&self, name: &LowerName) -> Option<LowerName> {
        let mut ce = name.base_name();
        while !self.exists.contains(&ce) {
            if ce.is_root() || !self.origin.zone_of(&ce) {
                return None;
            }
            ce = ce.base_name();
        }
        let star = Name::from_ascii("*")
            .ok()?
            .append_domain(&Name::from(ce))
            .ok()?;
        let star = LowerName::from(star);
        self.types.contains_key(&star).then_some(star)
    }
}

/// Zones served together: queries go to the zone with the longest origin
/// they fall in.
#[derive(Debug, Clone, Default)]
pub struct Authority {
    zones: Vec<Zone>,
}

/// How the answer will travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: answers larger than the client can take are truncated (TC).
    Udp,
    /// TCP: whole answers, up to 65,535 bytes.
    Tcp,
}

impl Authority {
    /// No zones yet.
    pub fn new() -> Authority {
        Authority::default()
    }

    /// Serves `zone` too.
    pub fn zone(mut self, zone: Zone) -> Authority {
        self.zones.push(zone);
        self.zones
            .sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        self
    }

    fn zone_for(&self, name: &LowerName) -> Option<&Zone> {
        self.zones.iter().find(|z| z.origin.zone_of(name))
    }

    /// The answer to the query in `packet`, or `None` to drop it (not even
    /// a DNS header, or itself a response).
    pub fn answer(&self, packet: &[u8], over: Transport) -> Option<Vec<u8>> {
        let request = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(_) => return formerr(packet),
        };
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.add_queries(request.queries.iter().cloned());
        let udp_limit = match &request.edns {
            Some(e) => {
                let mut edns = Edns::new();
                edns.set_max_payload(MAX_UDP as u16);
                response.set_edns(edns);
                (e.max_payload() as usize).clamp(512, MAX_UDP)
            }
            None => 512,
        };
        if request.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
        } else if request.queries.len() != 1 {
            response.metadata.response_code = ResponseCode::FormErr;
        } else {
            self.resolve(&request.queries[0], &mut response);
        }
        let bytes = response.to_vec().ok()?;
        if over == Transport::Udp && bytes.len() > udp_limit {
            let mut cut = response.truncate();
            cut.metadata.id = response.metadata.id;
            cut.metadata.message_type = MessageType::Response;
            return cut.to_vec().ok();
        }
        Some(bytes)
    }

    fn resolve(&self, q: &Query, response: &mut Message) {
        let qname = LowerName::from(q.name());
        let Some(zone) = self.zone_for(&qname) else {
            response.metadata.response_code = ResponseCode::Refused;
            return;
        };
        let qtype = q.query_type();
        // At or below a zone cut the data is the child's: a referral
        // (RFC 1034 4.3.2, step 3b), not an authoritative answer.
        if let Some(cut) = zone.cut_for(&qname, qtype) {
            return self.referral(zone, &cut, response);
        }
        response.metadata.authoritative = true;
        let mut name = qname;
        // CNAMEs are followed within the zone (8 at most: loops end).
        for _ in 0..8 {
            // Where the data comes from: the name itself, or a wildcard
            // when the name does not exist (RFC 4592).
            let source = if zone.has_name_or_below(&name) {
                name.clone()
            } else if let Some(w) = zone.wildcard_for(&name) {
                w
            } else {
                if response.answers.is_empty() {
                    self.negative(zone, true, response);
                }
                break;
            };
            let renamed = |r: &Record| {
                let mut r = r.clone();
                r.name = Name::from(name.clone());
                r
            };
            if qtype == RecordType::ANY {
                for t in zone.types.get(&source).into_iter().flatten() {
                    if let Some(set) = zone.rrset(&source, *t) {
                        response.add_answers(set.records_without_rrsigs().map(renamed));
                    }
                }
                if response.answers.is_empty() {
                    self.negative(zone, false, response);
                }
                break;
            }
            if let Some(set) = zone.rrset(&source, qtype) {
                response.add_answers(set.records_without_rrsigs().map(renamed));
                break;
            }
            if qtype != RecordType::CNAME {
                if let Some(cname) = zone
                    .rrset(&source, RecordType::CNAME)
                    .and_then(|s| s.records_without_rrsigs().next())
                {
                    response.add_answer(renamed(cname));
                    if let RData::CNAME(target) = &cname.data {
                        let target = LowerName::from(&target.0);
                        // Chased only where this zone has the data.
                        if zone.origin.zone_of(&target) && zone.cut_for(&target, qtype).is_none() {
                            name = target;
                            continue;
                        }
                    }
                    break;
                }
            }
            if response.answers.is_empty() {
                self.negative(zone, false, response);
            }
            break;
        }
        self.additionals(zone, response);
    }

    /// Nothing of this type here: NXDOMAIN (the name does not exist) or
    /// NODATA, with the SOA for negative caching (RFC 2308).
    fn negative(&self, zone: &Zone, nxdomain: bool, response: &mut Message) {
        if nxdomain {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        if let Some(soa) = zone.soa() {
            response.add_authority(soa.clone());
        }
    }

    /// A referral to the child zone at `cut`: its NS records in authority,
    /// their addresses (glue) in additional, not authoritative.
    fn referral(&self, zone: &Zone, cut: &LowerName, response: &mut Message) {
        let Some(ns) = zone.rrset(cut, RecordType::NS) else {
            return;
        };
        response.add_authorities(ns.records_without_rrsigs().cloned());
        for r in ns.records_without_rrsigs() {
            if let RData::NS(target) = &r.data {
                let target = LowerName::from(&target.0);
                for rt in [RecordType::A, RecordType::AAAA] {
                    if let Some(set) = zone.rrset(&target, rt) {
                        response.add_additionals(set.records_without_rrsigs().cloned());
                    }
                }
            }
        }
    }

    /// Addresses of in-zone MX, NS and SRV targets.
    fn additionals(&self, zone: &Zone, response: &mut Message) {
        let mut targets: Vec<LowerName> = Vec::new();
        for r in &response.answers {
            let t = match &r.data {
                RData::MX(mx) => Some(&mx.exchange),
                RData::NS(ns) => Some(&ns.0),
                RData::SRV(srv) => Some(&srv.target),
                _ => None,
            };
            if let Some(t) = t {
                targets.push(LowerName::from(t));
            }
        }
        for t in targets {
            for rt in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = zone.rrset(&t, rt) {
                    response.add_additionals(set.records_without_rrsigs().cloned());
                }
            }
        }
    }
}

/// FORMERR for a packet whose header parses; `None` (drop it) otherwise.
fn formerr(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let opcode = OpCode::from_u8((packet[2] >> 3) & 0x0f);
    Message::error_msg(id, opcode, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::DNSClass;

    const ZONE: &str = "\
$TTL 300
@       IN SOA ns1.example.test. hostmaster.example.test. ( 2026120101 3600 600 86400 60 )
        IN NS  ns1
        IN MX  10 mail
        IN A   192.0.2.1
ns1     IN A   192.0.2.53
mail    IN A   192.0.2.25
        IN AAAA 2001:db8::25
www     IN CNAME example.test.
alias   IN CNAME www
out     IN CNAME elsewhere.example.org.
txt     IN TXT \"hello world\"
_sip._tcp IN SRV 10 5 5060 ns1
a.b.deep IN A 192.0.2.77
*.wild  IN A 192.0.2.99
*.wild  IN TXT \"any\"
*.cname IN CNAME mail
sub     IN NS ns.sub
sub     IN NS ns.elsewhere.example.
ns.sub  IN A 192.0.2.153
";

    fn authority() -> Authority {
        Authority::new().zone(Zone::parse("example.test.", ZONE, None).unwrap())
    }

    fn ask(name: &str, t: RecordType, edns: Option<u16>) -> Message {
        let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
        let mut q = Query::query(Name::from_ascii(name).unwrap(), t);
        q.set_query_class(DNSClass::IN);
        m.add_query(q);
        m.metadata.recursion_desired = true;
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        let out = authority()
            .answer(&m.to_vec().unwrap(), Transport::Udp)
            .unwrap();
        Message::from_vec(&out).unwrap()
    }

    #[test]
    fn answers_nxdomain_nodata_and_refused() {
        let r = ask("example.test.", RecordType::A, None);
        assert_eq!(r.metadata.id, 4242);
        assert!(
            r.metadata.authoritative
                && r.metadata.recursion_desired
                && !r.metadata.recursion_available
        );
        assert_eq!(r.answers.len(), 1);
        let r = ask("nope.example.test.", RecordType::A, None);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        let r = ask("mail.example.test.", RecordType::TXT, None);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        // An empty non-terminal is NODATA, not NXDOMAIN.
        let r = ask("b.deep.example.test.", RecordType::A, None);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        let r = ask("www.example.org.", RecordType::A, None);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert!(!r.metadata.authoritative);
    }

    #[test]
    fn cnames_are_chased_in_zone_and_additionals_given() {
        let r = ask("alias.example.test.", RecordType::A, None);
        let types: Vec<RecordType> = r.answers.iter().map(|a| a.record_type()).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::CNAME, RecordType::A]);
        let r = ask("out.example.test.", RecordType::A, None);
        assert_eq!(r.answers.len(), 1, "out of zone: the CNAME only");
        let r = ask("example.test.", RecordType::MX, None);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.additionals.len(), 2, "mail's A and AAAA");
        let r = ask("_sip._tcp.example.test.", RecordType::SRV, None);
        assert_eq!(r.additionals.len(), 1);
    }

    #[test]
    fn wildcards_answer_for_names_that_do_not_exist() {
        let r = ask("anything.wild.example.test.", RecordType::A, None);
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(
            r.answers[0].name.to_string(),
            "anything.wild.example.test.",
            "owner is the name asked"
        );
        let r = ask("a.b.wild.example.test.", RecordType::TXT, None);
        assert_eq!(r.answers.len(), 1, "any depth below the closest encloser");
        // The wildcard exists without MX: NODATA, not NXDOMAIN.
        let r = ask("x.wild.example.test.", RecordType::MX, None);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        // A wildcard CNAME is chased.
        let r = ask("z.cname.example.test.", RecordType::A, None);
        let types: Vec<RecordType> = r.answers.iter().map(|a| a.record_type()).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::A]);
        // No wildcard at the closest encloser (deep, an empty
        // non-terminal): NXDOMAIN; names that exist are not wildcarded.
        let r = ask("x.deep.example.test.", RecordType::A, None);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        let r = ask("nope.example.test.", RecordType::A, None);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn delegations_are_referred_with_glue() {
        for name in [
            "sub.example.test.",
            "www.sub.example.test.",
            "a.b.sub.example.test.",
        ] {
            let r = ask(name, RecordType::A, None);
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(
                !r.metadata.authoritative,
                "{name}: a referral is not authoritative"
            );
            assert!(r.answers.is_empty());
            let ns: Vec<String> = r.authorities.iter().map(|a| a.data.to_string()).collect();
            assert_eq!(ns.len(), 2, "{name}: {ns:?}");
            assert_eq!(r.additionals.len(), 1, "glue for the in-zone server only");
        }
        // DS at the cut is the parent's to answer (NODATA here).
        let r = ask("sub.example.test.", RecordType::DS, None);
        assert!(r.metadata.authoritative);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn udp_answers_are_truncated_to_what_the_client_takes() {
        let mut zone = String::from(ZONE);
        for i in 0..60 {
            zone.push_str(&format!(
                "big IN TXT \"{}\"\n",
                format!("{i:02}").repeat(20)
            ));
        }
        let auth = Authority::new().zone(Zone::parse("example.test.", &zone, None).unwrap());
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("big.example.test.").unwrap(),
            RecordType::TXT,
        ));
        let plain = auth.answer(&m.to_vec().unwrap(), Transport::Udp).unwrap();
        assert!(plain.len() <= 512);
        let plain = Message::from_vec(&plain).unwrap();
        assert!(plain.metadata.truncation && plain.answers.is_empty());
        assert_eq!(plain.metadata.id, 7);
        let whole = auth.answer(&m.to_vec().unwrap(), Transport::Tcp).unwrap();
        let whole = Message::from_vec(&whole).unwrap();
        assert!(!whole.metadata.truncation);
        assert_eq!(whole.answers.len(), 60);
        // With EDNS the limit is the client's size (at most 1232).
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.set_edns(e);
        let out = auth.answer(&m.to_vec().unwrap(), Transport::Udp).unwrap();
        assert!(out.len() <= MAX_UDP);
        assert!(Message::from_vec(&out).unwrap().edns.is_some());
    }

    #[test]
    fn malformed_packets_get_formerr_or_are_dropped() {
        let auth = authority();
        assert_eq!(auth.answer(b"short", Transport::Udp), None);
        let mut junk = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        junk.extend_from_slice(&[0xff; 10]);
        let r = Message::from_vec(&auth.answer(&junk, Transport::Udp).unwrap()).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        // A response is never answered (no loops between servers).
        let mut resp = junk.clone();
        resp[2] |= 0x80;
        assert_eq!(auth.answer(&resp, Transport::Udp), None);
    }
}
