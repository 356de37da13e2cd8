//! Answers kept for their TTL, negative ones too (RFC 2308).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::rr::{LowerName, Record, RecordType};

/// How many answers a cache holds by default.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;

/// The longest any answer is kept, whatever its TTL says (Unbound's
/// `cache-max-ttl` default, one day).
pub const MAX_TTL: Duration = Duration::from_secs(86_400);

/// The longest a negative answer is kept (RFC 2308 suggests 1 to 3
/// hours; Unbound uses an hour).
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3_600);

/// What the cache knows of a name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The records (their TTLs what is left of them), and the canonical
    /// name they belong to after CNAMEs.
    Records(Vec<Record>, LowerName),
    /// The name does not exist.
    NxDomain,
    /// The name exists without records of this type.
    NoData,
}

#[derive(Debug)]
struct Entry {
    value: Cached,
    stored: Instant,
    expires: Instant,
}

/// A resolver's cache, shared by its lookups. Bounded: when full, expired
/// entries go first, then the ones closest to expiring.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<(LowerName, RecordType), Entry>,
    capacity: usize,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(DEFAULT_CACHE_SIZE)
    }
}

impl Cache {
    /// A cache of at most `capacity` answers (0: nothing is kept).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// What is known of `name`/`rtype` at `now`, TTLs counted down.
    pub fn get(&mut self, name: &LowerName, rtype: RecordType, now: Instant) -> Option<Cached> {
        let key = (name.clone(), rtype);
        let entry = self.entries.get(&key)?;
        if now >= entry.expires {
            self.entries.remove(&key);
            return None;
        }
        let gone = now.duration_since(entry.stored).as_secs() as u32;
        Some(match &entry.value {
            Cached::Records(records, canonical) => Cached::Records(
                records
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.ttl = r.ttl.saturating_sub(gone);
                        r
                    })
                    .collect(),
                canonical.clone(),
            ),
            other => other.clone(),
        })
    }

    /// Keeps `value` for `ttl` (capped at [`MAX_TTL`], or
    /// [`MAX_NEGATIVE_TTL`] for negative answers). A TTL of 0 keeps
    /// nothing.
    pub fn put(
        &mut self,
        name: &LowerName,
        rtype: RecordType,
        value: Cached,
        ttl: Duration,
        now: Instant,
    ) {
        let cap = match value {
            Cached::Records(..) => MAX_TTL,
            _ => MAX_NEGATIVE_TTL,
        };
        let ttl = ttl.min(cap);
        if ttl.is_zero() || self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, e| e.expires > now);
        }
        if self.entries.len() >= self.capacity {
            let soonest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone());
            if let Some(k) = soonest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(
            (name.clone(), rtype),
            Entry {
                value,
                stored: now,
                expires: now + ttl,
            },
        );
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::{Name, RData};

    use super::*;

    #[test]
    fn entries_expire_count_down_and_stay_bounded() {
        let now = Instant::now();
        let mut cache = Cache::new(2);
        let name = LowerName::from(Name::from_str("a.example.").unwrap());
        let rec = Record::from_rdata(
            Name::from_str("a.example.").unwrap(),
            300,
            RData::A("192.0.2.1".parse().unwrap()),
        );
        cache.put(
            &name,
            RecordType::A,
            Cached::Records(vec![rec], name.clone()),
            Duration::from_secs(300),
            now,
        );
        match cache.get(&name, RecordType::A, now + Duration::from_secs(100)) {
            Some(Cached::Records(r, _)) => assert_eq!(r[0].ttl, 200),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cache.get(&name, RecordType::A, now + Duration::from_secs(300)),
            None
        );
        // Negative answers are capped at an hour.
        cache.put(
            &name,
            RecordType::MX,
            Cached::NoData,
            Duration::from_secs(999_999),
            now,
        );
        assert_eq!(
            cache.get(&name, RecordType::MX, now + MAX_NEGATIVE_TTL),
            None
        );
        for (i, t) in [RecordType::TXT, RecordType::NS, RecordType::SOA]
            .iter()
            .enumerate()
        {
            cache.put(
                &name,
                *t,
                Cached::NxDomain,
                Duration::from_secs(10 + i as u64),
                now,
            );
        }
        assert_eq!(cache.len(), 2, "bounded");
        assert_eq!(
            cache.get(&name, RecordType::TXT, now),
            None,
            "the soonest to expire went"
        );
    }
}
