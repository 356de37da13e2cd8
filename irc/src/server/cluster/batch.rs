//! What the cluster does in PostgreSQL: its tables, and one batch of
//! changes as one transaction (our node's row, each change, the sweep of
//! dead servers, the numbered notifications).

use braid::Failure;
use braid_db::postgres::Transaction;
use braid_db::rusqlite::types::Value;

use super::wire::event;
use super::{Batch, ClusterConfig, Op, Outcome, CHANNEL, MAX_PAYLOAD};
use crate::names::irc_lower;
use crate::server::linked::Snapshot;

pub(super) const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS braid_irc_nodes (
        node text PRIMARY KEY, pid integer NOT NULL, seen timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS braid_irc_nicks (
        nick_key text PRIMARY KEY,
        node text NOT NULL REFERENCES braid_irc_nodes (node) ON DELETE CASCADE,
        nick text NOT NULL, ident text NOT NULL, host text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS braid_irc_members (
        nick_key text NOT NULL REFERENCES braid_irc_nicks (nick_key) ON DELETE CASCADE,
        channel_key text NOT NULL, channel text NOT NULL,
        PRIMARY KEY (nick_key, channel_key))",
    "CREATE TABLE IF NOT EXISTS braid_irc_topics (channel_key text PRIMARY KEY, topic text NOT NULL)",
];

pub(super) const CLAIM: &str = "INSERT INTO braid_irc_nicks (nick_key, node, nick, ident, host) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (nick_key) DO UPDATE \
     SET nick = EXCLUDED.nick, ident = EXCLUDED.ident, host = EXCLUDED.host \
     WHERE braid_irc_nicks.node = EXCLUDED.node";
pub(super) const CLAIM_RENAME: &str =
    "INSERT INTO braid_irc_nicks (nick_key, node, nick, ident, host) \
     SELECT $1, node, $2, ident, host FROM braid_irc_nicks WHERE nick_key = $3 AND node = $4 \
     ON CONFLICT (nick_key) DO NOTHING";
pub(super) const RECASE: &str =
    "UPDATE braid_irc_nicks SET nick = $1 WHERE nick_key = $2 AND node = $3";
pub(super) const MOVE_MEMBERS: &str =
    "UPDATE braid_irc_members SET nick_key = $1 WHERE nick_key = $2";
pub(super) const RELEASE: &str = "DELETE FROM braid_irc_nicks WHERE nick_key = $1 AND node = $2";
pub(super) const JOIN: &str = "INSERT INTO braid_irc_members (nick_key, channel_key, channel) \
     SELECT $1, $2, $3 WHERE EXISTS \
     (SELECT 1 FROM braid_irc_nicks WHERE nick_key = $1 AND node = $4) \
     ON CONFLICT DO NOTHING";
pub(super) const PART: &str =
    "DELETE FROM braid_irc_members WHERE nick_key = $1 AND channel_key = $2";
pub(super) const FORGET_TOPIC: &str =
    "DELETE FROM braid_irc_topics WHERE channel_key = $1 AND NOT EXISTS \
     (SELECT 1 FROM braid_irc_members WHERE channel_key = $1)";
pub(super) const SET_TOPIC: &str =
    "INSERT INTO braid_irc_topics (channel_key, topic) VALUES ($1, $2) \
     ON CONFLICT (channel_key) DO UPDATE SET topic = EXCLUDED.topic";
pub(super) const CLEAR_TOPIC: &str = "DELETE FROM braid_irc_topics WHERE channel_key = $1";
/// Our node's row, made or refreshed; `true` if it had to be made.
pub(super) const TOUCH: &str = "INSERT INTO braid_irc_nodes (node, pid, seen) \
     VALUES ($1, pg_backend_pid(), now()) ON CONFLICT (node) DO UPDATE \
     SET pid = EXCLUDED.pid, seen = EXCLUDED.seen RETURNING (xmax = 0)";
/// Nodes silent past the timeout, or whose connection is gone and that
/// have not been heard from for two heartbeats (a live node refreshes its
/// connection's pid with every batch).
pub(super) const SWEEP: &str = "DELETE FROM braid_irc_nodes WHERE node <> $1 AND \
     (seen < now() - make_interval(secs => $2) OR (seen < now() - make_interval(secs => $3) \
     AND pid NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL))) RETURNING node";

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        _ => String::new(),
    }
}

pub(super) async fn make_schema(tx: Transaction) -> Result<(), Failure> {
    // Two servers starting at once would race in CREATE TABLE.
    tx.query("SELECT pg_advisory_xact_lock(7467527201)", vec![])
        .await?;
    for sql in SCHEMA {
        tx.execute(sql, vec![]).await?;
    }
    Ok(())
}

/// One batch, in one transaction: our node row, each op, the sweep, the
/// notifications (delivered at commit).
pub(super) async fn run_batch(
    tx: Transaction,
    node: String,
    mut seq: u64,
    ops: Vec<Op>,
    cfg: ClusterConfig,
) -> Result<Batch, Failure> {
    let me = Value::Text(node.clone());
    let t = |s: &str| Value::Text(s.to_owned());
    let rows = tx.query(TOUCH, vec![me.clone()]).await?;
    let made_again = rows.first().and_then(|r| r.first()) == Some(&Value::Integer(1));
    let mut lines: Vec<String> = Vec::new();
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Claim { nick, user, host } => {
                let key = irc_lower(&nick);
                let n = tx
                    .execute(
                        CLAIM,
                        vec![t(&key), me.clone(), t(&nick), t(&user), t(&host)],
                    )
                    .await?;
                if n == 1 {
                    lines.push(event(None, "UID", &[&nick, &user, &host]));
                }
                outcomes.push(Outcome::Claimed(n == 1));
            }
            Op::Rename { old, new } => {
                let (okey, nkey) = (irc_lower(&old), irc_lower(&new));
                let ok = if okey == nkey {
                    tx.execute(RECASE, vec![t(&new), t(&okey), me.clone()])
                        .await?
                        == 1
                } else if tx
                    .execute(CLAIM_RENAME, vec![t(&nkey), t(&new), t(&okey), me.clone()])
                    .await?
                    == 1
                {
                    tx.execute(MOVE_MEMBERS, vec![t(&nkey), t(&okey)]).await?;
                    tx.execute(RELEASE, vec![t(&okey), me.clone()]).await?;
                    true
                } else {
                    false
                };
                if ok {
                    lines.push(event(Some(&old), "NICK", &[&new]));
                }
                outcomes.push(Outcome::Claimed(ok));
            }
            Op::Write { statements, line } => {
                for (sql, params) in statements {
                    tx.execute(sql, params).await?;
                }
                if !line.is_empty() {
                    lines.push(line);
                }
                outcomes.push(Outcome::Done);
            }
            Op::Snapshot => {
                let users = tx
                    .query(
                        "SELECT node, nick, ident, host FROM braid_irc_nicks WHERE node <> $1",
                        vec![me.clone()],
                    )
                    .await?;
                let members = tx
                    .query(
                        "SELECT n.nick, m.channel FROM braid_irc_members m \
                         JOIN braid_irc_nicks n USING (nick_key) WHERE n.node <> $1",
                        vec![me.clone()],
                    )
                    .await?;
                let topics = tx
                    .query("SELECT channel_key, topic FROM braid_irc_topics", vec![])
                    .await?;
                outcomes.push(Outcome::Snapshot(Snapshot {
                    users: users
                        .iter()
                        .map(|r| (text(&r[0]), text(&r[1]), text(&r[2]), text(&r[3])))
                        .collect(),
                    members: members.iter().map(|r| (text(&r[0]), text(&r[1]))).collect(),
                    topics: topics.iter().map(|r| (text(&r[0]), text(&r[1]))).collect(),
                }));
            }
            Op::Touch => outcomes.push(Outcome::Done),
        }
    }
    let swept: Vec<String> = tx
        .query(
            SWEEP,
            vec![
                me.clone(),
                Value::Real(cfg.timeout.as_secs_f64()),
                Value::Real((cfg.heartbeat * 2).as_secs_f64()),
            ],
        )
        .await?
        .iter()
        .map(|r| text(&r[0]))
        .collect();
    for gone in &swept {
        lines.push(event(None, "SQUIT", &[gone, "gone"]));
    }
    // Payloads of whole lines, each numbered (NOTIFY also folds two
    // identical payloads of one transaction into one: never identical).
    let mut payload = String::new();
    let flush = |payload: &mut String, seq: &mut u64| {
        let p = format!("{node} {seq}\n{payload}");
        payload.clear();
        *seq += 1;
        p
    };
    let mut payloads = Vec::new();
    for l in lines {
        if !payload.is_empty() && payload.len() + l.len() + 1 > MAX_PAYLOAD {
            payloads.push(flush(&mut payload, &mut seq));
        }
        if !payload.is_empty() {
            payload.push('\n');
        }
        payload.push_str(&l);
    }
    if !payload.is_empty() {
        payloads.push(flush(&mut payload, &mut seq));
    }
    for p in payloads {
        tx.query("SELECT pg_notify($1, $2)", vec![t(CHANNEL), Value::Text(p)])
            .await?;
    }
    Ok(Batch {
        outcomes,
        made_again,
        swept,
        next_seq: seq,
    })
}
