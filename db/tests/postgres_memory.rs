//! The PostgreSQL client's protocol over the in-memory transport against
//! a scripted server: the login, a query with parameters, a notice in the
//! middle, an error and recovery, and the message cap, with the server's
//! bytes delivered all at once and one byte at a time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::aio::{Stream, StreamProtocol};
use braid::testing::{connected_pair, MemoryReactor, Pair};
use braid::{Deferred, Failure, Protocol, Transport};
use braid_db::postgres::{Connect, PgConfig, PgError, PgErrorKind, PgPool};
use rusqlite::types::Value;

/// A backend message: type, length, body.
fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The server side: a script of what PostgreSQL would answer.
#[derive(Default)]
struct Script {
    inbox: Vec<u8>,
    started: bool,
    params: Vec<Option<String>>,
    sql: String,
    seen: Rc<RefCell<Vec<String>>>,
}

impl Script {
    fn answer(&mut self, t: &Transport) {
        loop {
            if !self.started {
                if self.inbox.len() < 4 {
                    return;
                }
                let len = u32::from_be_bytes(self.inbox[..4].try_into().unwrap()) as usize;
                if self.inbox.len() < len {
                    return;
                }
                self.inbox.drain(..len);
                self.started = true;
                // Clear-text password, please.
                t.write(&msg(b'R', &3u32.to_be_bytes()));
                continue;
            }
            if self.inbox.len() < 5 {
                return;
            }
            let ty = self.inbox[0];
            let len = u32::from_be_bytes(self.inbox[1..5].try_into().unwrap()) as usize;
            if self.inbox.len() < 1 + len {
                return;
            }
            let body: Vec<u8> = self.inbox.drain(..1 + len).skip(5).collect();
            self.seen.borrow_mut().push((ty as char).to_string());
            match ty {
                b'p' => {
                    assert_eq!(body, b"pw\0");
                    let mut out = msg(b'R', &0u32.to_be_bytes());
                    out.extend(msg(b'S', &[cstr("server_version"), cstr("15.0")].concat()));
                    out.extend(msg(
                        b'K',
                        &[1u32.to_be_bytes(), 2u32.to_be_bytes()].concat(),
                    ));
                    out.extend(msg(b'Z', b"I"));
                    t.write(&out);
                }
                b'P' => {
                    // name, query, n types
                    let q = &body[1..];
                    self.sql =
                        String::from_utf8_lossy(&q[..q.iter().position(|b| *b == 0).unwrap()])
                            .into_owned();
                }
                b'B' => {
                    // portal "", statement "", formats, values
                    let mut at = 2;
                    let nf = u16::from_be_bytes([body[at], body[at + 1]]) as usize;
                    at += 2 + 2 * nf;
                    let nv = u16::from_be_bytes([body[at], body[at + 1]]) as usize;
                    at += 2;
                    self.params.clear();
                    for _ in 0..nv {
                        let l = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
                        at += 4;
                        if l < 0 {
                            self.params.push(None);
                        } else {
                            let v = &body[at..at + l as usize];
                            self.params
                                .push(Some(String::from_utf8_lossy(v).into_owned()));
                            at += l as usize;
                        }
                    }
                }
                b'S' => {
                    let mut out = msg(b'1', b"");
                    if self.sql.contains("missing") {
                        let fields = [
                            b"SERROR\0".to_vec(),
                            b"C42P01\0".to_vec(),
                            b"Mrelation \"missing\" does not exist\0".to_vec(),
                            vec![0],
                        ]
                        .concat();
                        out.extend(msg(b'E', &fields));
                    } else if self.sql.contains("huge") {
                        // A header claiming more than the client's cap.
                        out.extend(msg(b'2', b""));
                        let mut h = vec![b'D'];
                        h.extend_from_slice(&100_000u32.to_be_bytes());
                        t.write(&[out, h].concat());
                        return;
                    } else {
                        out.extend(msg(b'2', b""));
                        let field = |name: &str, oid: u32| {
                            [
                                cstr(name),
                                0u32.to_be_bytes().to_vec(),
                                0u16.to_be_bytes().to_vec(),
                                oid.to_be_bytes().to_vec(),
                                (-1i16).to_be_bytes().to_vec(),
                                (-1i32).to_be_bytes().to_vec(),
                                0u16.to_be_bytes().to_vec(),
                            ]
                            .concat()
                        };
                        out.extend(msg(
                            b'T',
                            &[2u16.to_be_bytes().to_vec(), field("n", 23), field("s", 25)].concat(),
                        ));
                        // A notice between rows is logged, not a row.
                        out.extend(msg(
                            b'N',
                            &[
                                b"SNOTICE\0".to_vec(),
                                b"Mjust so you know\0".to_vec(),
                                vec![0],
                            ]
                            .concat(),
                        ));
                        let col = |v: &Option<String>| match v {
                            Some(s) => [
                                (s.len() as i32).to_be_bytes().to_vec(),
                                s.as_bytes().to_vec(),
                            ]
                            .concat(),
                            None => (-1i32).to_be_bytes().to_vec(),
                        };
                        let row = [
                            2u16.to_be_bytes().to_vec(),
                            col(&self.params[0]),
                            col(&self.params[1]),
                        ]
                        .concat();
                        out.extend(msg(b'D', &row));
                        out.extend(msg(b'C', &cstr("SELECT 1")));
                    }
                    out.extend(msg(b'Z', b"I"));
                    t.write(&out);
                }
                _ => {}
            }
        }
    }
}

struct Server(Script);
impl Protocol for Server {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.0.inbox.extend_from_slice(data);
        self.0.answer(t);
    }
}

fn memory_connect(
    pairs: Rc<RefCell<Vec<Pair>>>,
    seen: Rc<RefCell<Vec<String>>>,
    byte_by_byte: bool,
) -> Connect {
    Rc::new(move |reactor, _cfg| {
        let d: Deferred<Stream, Failure> = Deferred::new();
        let done = RefCell::new(Some(d.resolver()));
        let pair = connected_pair(
            reactor,
            Server(Script {
                seen: seen.clone(),
                ..Script::default()
            }),
            StreamProtocol::new(move |s| {
                if let Some(r) = done.borrow_mut().take() {
                    r.resolve(Ok(s));
                }
            }),
        );
        if byte_by_byte {
            pair.set_capacity(1);
        }
        pairs.borrow_mut().push(pair);
        Box::pin(async move { d.await.map_err(|f| std::io::Error::other(f.to_string())) })
    })
}

fn wait<T: 'static>(
    mr: &MemoryReactor,
    pairs: &Rc<RefCell<Vec<Pair>>>,
    d: Deferred<T, Failure>,
) -> Result<T, Failure> {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    d.add_both(move |r| {
        *o.borrow_mut() = Some(r);
        Ok::<(), Failure>(())
    });
    for _ in 0..200_000 {
        if out.borrow().is_some() {
            break;
        }
        mr.reactor().iterate(Duration::ZERO).unwrap();
        // (a pump may not add a pair: connecting happens in iterate)
        let n = pairs.borrow().len();
        for i in 0..n {
            let p = pairs.borrow();
            p[i].pump_once();
        }
    }
    let r = out.borrow_mut().take().expect("the Deferred fired");
    r
}

#[test]
fn the_protocol_whole_and_byte_by_byte() {
    for byte_by_byte in [false, true] {
        let mr = MemoryReactor::new();
        let pairs: Rc<RefCell<Vec<Pair>>> = Rc::default();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let mut config = PgConfig::parse("postgres://app:pw@db.test/app").unwrap();
        config.max_message = 1024;
        let pool = PgPool::with_connect(
            mr.reactor(),
            config,
            1,
            memory_connect(pairs.clone(), seen.clone(), byte_by_byte),
        );

        let rows = wait(
            &mr,
            &pairs,
            pool.run_query(
                "SELECT $1::int, $2",
                vec![Value::Integer(7), Value::Text("seven".into())],
            ),
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![vec![Value::Integer(7), Value::Text("seven".into())]],
            "byte by byte: {byte_by_byte}"
        );
        let rows = wait(
            &mr,
            &pairs,
            pool.run_query(
                "SELECT $1::int, $2",
                vec![Value::Null, Value::Text("x".into())],
            ),
        )
        .unwrap();
        assert_eq!(rows, vec![vec![Value::Null, Value::Text("x".into())]]);
        assert_eq!(
            seen.borrow()[..6],
            ["p", "P", "B", "D", "E", "S"],
            "login, then the extended protocol"
        );

        let e = wait(&mr, &pairs, pool.run_query("SELECT * FROM missing", vec![])).unwrap_err();
        let pg = e.downcast_ref::<PgError>().unwrap();
        assert_eq!((pg.kind(), pg.code()), (PgErrorKind::Server, Some("42P01")));
        // The same connection goes on after the error.
        wait(
            &mr,
            &pairs,
            pool.run_query(
                "SELECT $1::int, $2",
                vec![Value::Integer(1), Value::Integer(2)],
            ),
        )
        .unwrap();
        assert_eq!(pairs.borrow().len(), 1, "one connection all along");

        // A message over the cap: refused before it is read, the
        // connection given up, the next query on a new one.
        let e = wait(&mr, &pairs, pool.run_query("SELECT huge", vec![])).unwrap_err();
        assert_eq!(
            e.downcast_ref::<PgError>().unwrap().kind(),
            PgErrorKind::Protocol,
            "{e}"
        );
        wait(
            &mr,
            &pairs,
            pool.run_query("SELECT $1::int, $2", vec![Value::Integer(3), Value::Null]),
        )
        .unwrap();
        assert_eq!(pairs.borrow().len(), 2);
    }
}
