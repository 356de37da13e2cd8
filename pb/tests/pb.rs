//! Perspective Broker between braid peers over loopback, and hostile
//! input from a raw socket: every case ends in an error reply or a clean
//! disconnect, never a panic, a stack overflow or unbounded memory.

use braid_tls::prelude::*;
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::{Deferred, Reactor};
use braid_cred::{AnonymousChecker, InMemoryChecker, Portal};
use braid_pb::banana::{self, Decoder, Item};
use braid_pb::{
    self, Args, CopyTypes, LoginRoot, Object, PbClientFactory, PbError, PbServerFactory,
    RemoteReference, Value,
};

const LIMIT: Duration = Duration::from_secs(30);

struct Server {
    addr: SocketAddr,
    logouts: Rc<RefCell<Vec<String>>>,
    released: Rc<Cell<u32>>,
}

fn server(reactor: &Reactor) -> Server {
    let logouts = Rc::new(RefCell::new(Vec::new()));
    let l = logouts.clone();
    let realm = move |user: &str, _: Value| {
        let name = user.to_owned();
        let who = user.to_owned();
        let l = l.clone();
        let logout: Box<dyn FnOnce()> = Box::new(move || l.borrow_mut().push(who));
        (
            Object::builder()
                .method("whoami", move |_, _| Ok(Value::str(&name)))
                .build(),
            Some(logout),
        )
    };
    let portal = Portal::new(reactor, realm)
        .checker(InMemoryChecker::new().user("alice", "secret"))
        .checker(AnonymousChecker);
    let released = Rc::new(Cell::new(0));
    let rel = released.clone();
    let r = reactor.clone();
    let app = Object::builder()
        .method("echo", |_, a| Ok(a.require(0, "x")?.clone()))
        .deferred_method("slow", move |_, a| {
            // Answers after 50 ms, so later calls overtake it.
            let v = a.require(0, "x").cloned().unwrap_or(Value::None);
            let d = Deferred::new();
            let res = d.resolver();
            r.call_later(Duration::from_millis(50), move || res.callback(v));
            d
        })
        .method("many_objects", move |_, a| {
            let n = a.require(0, "n")?.as_int().unwrap_or(0);
            let rel = rel.clone();
            Ok(Value::List(
                (0..n)
                    .map(|_| {
                        let rel = rel.clone();
                        Value::Object(
                            Object::builder()
                                .on_release(move |_| rel.set(rel.get() + 1))
                                .build(),
                        )
                    })
                    .collect(),
            ))
        })
        .method("copy", |_, a| Ok(a.require(0, "x")?.clone()))
        .typed_method("scale", |_, (v, k): (Vec<f64>, f64)| {
            Ok(v.into_iter().map(|x| x * k).collect::<Vec<_>>())
        });
    let root = LoginRoot::new(portal).add_to(app).build();
    let factory =
        PbServerFactory::new(root).copy_types(CopyTypes::default().register("test.Point"));
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), factory)
        .unwrap();
    Server {
        addr: port.local_addr(),
        logouts,
        released,
    }
}

fn connect(reactor: &Reactor, addr: SocketAddr) -> RemoteReference {
    let f = PbClientFactory::new();
    let root = f.root_object();
    reactor.connect_tcp(addr, f, None);
    wait(reactor, root).unwrap()
}

fn wait<T: 'static>(reactor: &Reactor, d: Deferred<T, PbError>) -> Result<T, PbError> {
    braid::testing::run_until_fired(reactor, LIMIT, d).unwrap()
}

#[test]
fn answers_out_of_order_and_no_answer_calls() {
    let reactor = Reactor::new().unwrap();
    let s = server(&reactor);
    let root = connect(&reactor, s.addr);
    let order = Rc::new(RefCell::new(Vec::new()));
    let (o1, o2) = (order.clone(), order.clone());
    let slow = root
        .call_remote("slow", Args::new(vec![1.into()]))
        .add_callback(move |v| o1.borrow_mut().push(v));
    let fast = root
        .call_remote("echo", Args::new(vec![2.into()]))
        .add_callback(move |v| o2.borrow_mut().push(v));
    root.call_remote_no_answer("echo", Args::new(vec![3.into()]));
    wait(&reactor, braid::gather(vec![slow, fast])).unwrap();
    assert_eq!(*order.borrow(), [Value::Int(2), Value::Int(1)]);
}

#[test]
fn typed_calls_with_serde() {
    let reactor = Reactor::new().unwrap();
    let s = server(&reactor);
    let root = connect(&reactor, s.addr);
    let got: Vec<f64> = wait(&reactor, root.call_typed("scale", &(vec![1.0, 2.5], 2.0))).unwrap();
    assert_eq!(got, [2.0, 5.0]);
    // Wrong argument types: a TypeError from the server.
    let e = wait(
        &reactor,
        root.call_typed::<_, Vec<f64>>("scale", &("no", "numbers")),
    )
    .unwrap_err();
    assert_eq!(e.type_name, "builtins.TypeError", "{e}");
    // A result that does not fit the asked type: a TypeError here.
    let e = wait(
        &reactor,
        root.call_typed::<_, String>("scale", &(vec![1.0], 1.0)),
    )
    .unwrap_err();
    assert_eq!(e.type_name, "builtins.TypeError", "{e}");
}

#[test]
fn references_both_ways_and_reference_counting() {
    let reactor = Reactor::new().unwrap();
    let s = server(&reactor);
    let root = connect(&reactor, s.addr);
    // Objects the server sends become proxies here; dropping them sends
    // decrefs, and the server releases them.
    let objs = wait(
        &reactor,
        root.call_remote("many_objects", Args::new(vec![5.into()])),
    )
    .unwrap();
    assert_eq!(objs.as_seq().unwrap().len(), 5);
    assert!(objs
        .as_seq()
        .unwrap()
        .iter()
        .all(|o| o.as_remote().is_some()));
    drop(objs);
    run_until(&reactor, LIMIT, || s.released.get() == 5).unwrap();
    // One of ours sent and echoed back arrives as our own object.
    let mine = Object::builder().build();
    let back = wait(
        &reactor,
        root.call_remote("echo", Args::new(vec![Value::Object(mine.clone())])),
    )
    .unwrap();
    assert_eq!(back, Value::Object(mine));
    // More than 1,024 objects in one answer: an error, not a crash.
    let e = wait(
        &reactor,
        root.call_remote("many_objects", Args::new(vec![1100.into()])),
    )
    .unwrap_err();
    assert!(e.value.contains("Maxing out"), "{e}");
    // The connection still works.
    let v = wait(
        &reactor,
        root.call_remote("echo", Args::new(vec!["still".into()])),
    )
    .unwrap();
    assert_eq!(v, Value::str("still"));
}

#[test]
fn copies_of_registered_types_only() {
    let reactor = Reactor::new().unwrap();
    let s = server(&reactor);
    let root = connect(&reactor, s.addr);
    let point = Value::Copy(
        "test.Point".into(),
        Box::new(Value::Dict(vec![(Value::str("x"), 1.into())])),
    );
    // The client has not registered test.Point: the answer is refused
    // here, so register it on this side too.
    let f = PbClientFactory::new().copy_types(CopyTypes::default().register("test.Point"));
    let root2 = f.root_object();
    reactor.connect_tcp(s.addr, f, None);
    let root2 = wait(&reactor, root2).unwrap();
    let back = wait(
        &reactor,
        root2.call_remote("copy", Args::new(vec![point.clone()])),
    )
    .unwrap();
    assert_eq!(back, point);
    // An unregistered type is an error reply (InsecureJelly).
    let evil = Value::Copy("os.system".into(), Box::new(Value::str("rm -rf /")));
    let e = wait(&reactor, root.call_remote("copy", Args::new(vec![evil]))).unwrap_err();
    assert!(e.type_name.ends_with("InsecureJelly"), "{e}");
}

#[test]
fn logins_logout_and_the_one_shot_challenger() {
    let reactor = Reactor::new().unwrap();
    let s = server(&reactor);
    let root = connect(&reactor, s.addr);
    let avatar = wait(
        &reactor,
        braid_pb::login(&root, "alice", "secret", Value::None),
    )
    .unwrap();
    let who = wait(&reactor, avatar.call_remote("whoami", Args::default())).unwrap();
    assert_eq!(who, Value::str("alice"));
    // Dropping the avatar's last reference logs out.
    drop(avatar);
    run_until(&reactor, LIMIT, || s.logouts.borrow().len() == 1).unwrap();
    let e = wait(
        &reactor,
        braid_pb::login(&root, "alice", "nope", Value::None),
    )
    .unwrap_err();
    assert_eq!(e.type_name, "twisted.cred.error.UnauthorizedLogin");
    let e = wait(
        &reactor,
        braid_pb::login(&root, "mallory", "secret", Value::None),
    )
    .unwrap_err();
    assert_eq!(e.type_name, "twisted.cred.error.UnauthorizedLogin");
    // A challenger answers once.
    let answer = wait(
        &reactor,
        root.call_remote("login", Args::new(vec![Value::bytes("alice")])),
    )
    .unwrap();
    let parts = answer.as_seq().unwrap().to_vec();
    let (Value::Bytes(challenge), Value::Remote(challenger)) = (&parts[0], &parts[1]) else {
        panic!("{parts:?}");
    };
    let response = braid_pb::md5_response(b"secret", challenge);
    let first = wait(
        &reactor,
        challenger.call_remote(
            "respond",
            Args::new(vec![Value::bytes(response), Value::None]),
        ),
    );
    assert!(first.is_ok());
    let again = wait(
        &reactor,
        challenger.call_remote(
            "respond",
            Args::new(vec![Value::bytes(response), Value::None]),
        ),
    );
    assert!(again.is_err(), "a challenger is one-shot");
    // The anonymous avatar, logged out when the connection goes.
    let anon = wait(&reactor, braid_pb::login_anonymous(&root, Value::None)).unwrap();
    let who = wait(&reactor, anon.call_remote("whoami", Args::default())).unwrap();
    assert_eq!(who, Value::str("anonymous"));
    let noticed = Rc::new(Cell::new(false));
    let n = noticed.clone();
    anon.notify_on_disconnect(move || n.set(true));
    root.broker().unwrap().disconnect();
    run_until(&reactor, LIMIT, || {
        s.logouts.borrow().contains(&"anonymous".to_string())
    })
    .unwrap();
    run_until(&reactor, LIMIT, || noticed.get()).unwrap();
    // Registered after the fact: called at once.
    let late = Rc::new(Cell::new(false));
    let l = late.clone();
    anon.notify_on_disconnect(move || l.set(true));
    assert!(late.get());
}

/// A raw client: negotiates "pb" and version 6, then sends what a test
/// gives it and reports what came back before the server closed.
fn raw_session(addr: SocketAddr, hostile: &[u8]) -> (Vec<Item>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut d = Decoder::new();
    let mut buf = [0u8; 65536];
    // The server's offer.
    let offer = loop {
        let n = s.read(&mut buf).unwrap();
        d.feed(&buf[..n]);
        if let Some(i) = d.next_item().unwrap() {
            break i;
        }
    };
    assert_eq!(
        offer,
        Item::List(vec![Item::bytes("pb"), Item::bytes("none")])
    );
    d.set_vocab(true);
    s.write_all(&banana::to_bytes(&Item::bytes("pb"), false))
        .unwrap();
    let version = Item::List(vec![Item::bytes("version"), Item::Int(6)]);
    s.write_all(&banana::to_bytes(&version, true)).unwrap();
    let _ = s.write_all(hostile);
    let mut got = Vec::new();
    let mut closed = false;
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                d.feed(&buf[..n]);
                while let Ok(Some(i)) = d.next_item() {
                    got.push(i);
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break
            }
            Err(_) => {
                closed = true;
                break;
            }
        }
        // Enough once the version and a reply are in.
        if got.len() >= 2 {
            break;
        }
    }
    (got, closed)
}

fn message(id: i64, target: Item, name: &str, args: Vec<Item>) -> Vec<u8> {
    let mut tuple = vec![Item::bytes("tuple")];
    tuple.extend(args);
    banana::to_bytes(
        &Item::List(vec![
            Item::bytes("message"),
            Item::Int(id),
            target,
            Item::bytes(name),
            Item::Int(1),
            Item::List(tuple),
            Item::List(vec![Item::bytes("dictionary")]),
        ]),
        true,
    )
}

fn is_error_reply(items: &[Item]) -> Option<String> {
    items.iter().find_map(|i| match i {
        Item::List(v) if v.first() == Some(&Item::bytes("error")) => Some(format!("{:?}", v)),
        _ => None,
    })
}

#[test]
fn hostile_input_gets_an_error_or_a_clean_disconnect() {
    let reactor = Reactor::new().unwrap();
    let s = server(&reactor);
    let addr = s.addr;
    let root = || Item::bytes("root");
    // (name, bytes, expect an error reply (true) or a disconnect (false))
    let mut oversized = Vec::new();
    oversized.extend_from_slice(&[0x01, 0x01, 0x28, 0x82]); // 655361-byte string
    let mut deep = Vec::new();
    for _ in 0..100_000 {
        deep.extend_from_slice(&[0x01, 0x80]);
    }
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("oversized string", oversized, false),
        ("oversized list", vec![0x01, 0x01, 0x28, 0x80], false),
        ("deep nesting", deep, false),
        ("unknown vocabulary id", vec![0x7f, 0x87], false),
        ("unknown type byte", vec![0x99], false),
        (
            "decref of an unknown object",
            banana::to_bytes(
                &Item::List(vec![Item::bytes("decref"), Item::Int(77)]),
                true,
            ),
            false,
        ),
        (
            "a method not exposed",
            message(1, root(), "__init__", vec![]),
            true,
        ),
        (
            "an unknown object id",
            message(1, Item::Int(999), "echo", vec![]),
            true,
        ),
        (
            "an unregistered copy type",
            message(
                1,
                root(),
                "echo",
                vec![Item::List(vec![Item::bytes("os.system"), Item::bytes("x")])],
            ),
            true,
        ),
        (
            "a class tag",
            message(
                1,
                root(),
                "echo",
                vec![Item::List(vec![
                    Item::bytes("class"),
                    Item::bytes("os.system"),
                ])],
            ),
            true,
        ),
        (
            "an answer nobody asked for",
            banana::to_bytes(
                &Item::List(vec![Item::bytes("answer"), Item::Int(5), Item::Int(1)]),
                true,
            ),
            false,
        ),
        (
            "a message that is not a list",
            banana::to_bytes(&Item::Int(5), true),
            false,
        ),
        (
            "a malformed message",
            banana::to_bytes(
                &Item::List(vec![Item::bytes("message"), Item::Int(1)]),
                true,
            ),
            false,
        ),
    ];
    for (name, bytes, want_error) in cases {
        let h = std::thread::spawn(move || raw_session(addr, &bytes));
        run_until(&reactor, LIMIT, || h.is_finished()).unwrap();
        let (got, closed) = h.join().unwrap();
        if want_error {
            assert!(is_error_reply(&got).is_some(), "{name}: {got:?}");
        } else {
            assert!(closed, "{name}: not closed; got {got:?}");
        }
    }
    // The server is still fine.
    let root = connect(&reactor, addr);
    let v = wait(
        &reactor,
        root.call_remote("echo", Args::new(vec![1.into()])),
    )
    .unwrap();
    assert_eq!(v, Value::Int(1));
}

/// braid's stronger login: the password over TLS, checked against an
/// argon2 password file; refused on a connection without TLS.
#[test]
fn login_password_over_tls_against_a_password_file() {
    use braid_cred::PasswordFileChecker;
    use braid_tls::testing as pki;
    let dir = std::env::temp_dir().join(format!("braid-pb-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users");
    braid_cred::set_password(&file, "carol", "long passphrase").unwrap();
    let reactor = Reactor::new().unwrap();
    let realm = |user: &str, _: Value| {
        let name = user.to_owned();
        (
            Object::builder()
                .method("whoami", move |_, _| Ok(Value::str(&name)))
                .build(),
            None,
        )
    };
    let portal = Portal::new(&reactor, realm).checker(PasswordFileChecker::new(&file));
    let root = LoginRoot::new(portal).add_to(Object::builder()).build();
    let tls_port = reactor
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            PbServerFactory::new(root.clone()),
            &pki::server_config(),
        )
        .unwrap();
    let plain_port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), PbServerFactory::new(root))
        .unwrap();
    // Over TLS: accepted, and a wrong password refused.
    let f = PbClientFactory::new();
    let r = f.root_object();
    reactor.connect_tls(
        tls_port.local_addr(),
        "localhost",
        f,
        &pki::client_config(),
        None,
    );
    let r = wait(&reactor, r).unwrap();
    let avatar = wait(
        &reactor,
        braid_pb::login_password(&r, "carol", "long passphrase", Value::None),
    )
    .unwrap();
    let who = wait(&reactor, avatar.call_remote("whoami", Args::default())).unwrap();
    assert_eq!(who, Value::str("carol"));
    let e = wait(
        &reactor,
        braid_pb::login_password(&r, "carol", "wrong", Value::None),
    )
    .unwrap_err();
    assert_eq!(e.type_name, "twisted.cred.error.UnauthorizedLogin");
    // Over plain TCP: refused whatever the password.
    let plain = connect(&reactor, plain_port.local_addr());
    let e = wait(
        &reactor,
        braid_pb::login_password(&plain, "carol", "long passphrase", Value::None),
    )
    .unwrap_err();
    assert_eq!(e.type_name, "twisted.cred.error.UnauthorizedLogin");
    std::fs::remove_dir_all(&dir).unwrap();
}
