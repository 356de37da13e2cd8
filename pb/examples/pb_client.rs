//! A Perspective Broker client that exercises a server's surface (the one
//! `pb_server` and `tests/py/pb_server.py` publish), against braid or
//! Python Twisted. Prints one line per check and exits non-zero if any
//! failed.
//!
//! ```text
//! cargo run --features pb --example pb_client -- --port 8787 --user alice:secret
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::{Deferred, Reactor};
use braid_pb::{Args, Object, PbClientFactory, PbError, RemoteReference, Value};

type Log = Rc<RefCell<Vec<(String, bool, String)>>>;

fn check(log: &Log, name: &str, ok: bool, detail: String) {
    println!("{} {name}: {detail}", if ok { "ok" } else { "FAILED" });
    log.borrow_mut().push((name.to_owned(), ok, detail));
}

fn echo_values() -> Vec<(&'static str, Value)> {
    vec![
        ("int", Value::Int(42)),
        ("negative", Value::Int(-300)),
        ("large", Value::Int(1 << 40)),
        ("float", Value::Float(1.5)),
        ("bytes", Value::bytes(b"raw\x00bytes")),
        ("str", Value::str("héllo wörld")),
        ("none", Value::None),
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        (
            "list",
            Value::List(vec![1.into(), "two".into(), Value::None]),
        ),
        ("tuple", Value::Tuple(vec![1.into(), 2.into()])),
        (
            "dict",
            Value::Dict(vec![(Value::str("k"), Value::List(vec![]))]),
        ),
        ("vocabulary word", Value::bytes(b"copy")),
        (
            "shared",
            Value::List(vec![
                Value::Shared(1, Box::new(Value::List(vec![Value::Int(1)]))),
                Value::SharedRef(1),
            ]),
        ),
    ]
}

fn run(root: RemoteReference, user: Option<(String, String)>, log: Log) -> Deferred<(), PbError> {
    let mut steps: Vec<Deferred<(), PbError>> = Vec::new();
    for (name, v) in echo_values() {
        let (log, want) = (log.clone(), v.clone());
        steps.push(
            root.call_remote("echo", Args::new(vec![v]))
                .add_both(move |r| {
                    match r {
                        Ok(got) => check(
                            &log,
                            &format!("echo {name}"),
                            got == want,
                            format!("{got:?}"),
                        ),
                        Err(e) => check(&log, &format!("echo {name}"), false, e.to_string()),
                    }
                    Ok(())
                }),
        );
    }
    let l = log.clone();
    steps.push(
        root.call_remote("add", Args::new(vec![2.into()]).kw("b", 3))
            .add_both(move |r| {
                let ok = matches!(r, Ok(Value::Int(5)));
                check(&l, "add with a keyword", ok, format!("{r:?}"));
                Ok(())
            }),
    );
    let l = log.clone();
    steps.push(root.call_remote("fail", Args::default()).add_both(move |r| {
        let ok = matches!(&r, Err(e) if e.type_name.ends_with("ValueError") && e.value == "intentional failure");
        check(&l, "fail raises ValueError", ok, format!("{r:?}"));
        Ok(())
    }));
    let l = log.clone();
    steps.push(
        root.call_remote("nonexistent", Args::default())
            .add_both(move |r| {
                let ok = matches!(&r, Err(e) if e.is_a("builtins.AttributeError"));
                check(&l, "unknown method", ok, format!("{r:?}"));
                Ok(())
            }),
    );
    // subscribe: the server calls our object back.
    let notified = Deferred::<(), PbError>::new();
    let tell = RefCell::new(Some(notified.resolver()));
    let callback = Object::builder()
        .method("notify", move |_, args| {
            let msg = args.get(0, "msg").cloned();
            if let Some(r) = tell.borrow_mut().take() {
                if msg == Some(Value::str("msg")) {
                    r.callback(());
                } else {
                    r.errback(PbError::value_error(format!("notify got {msg:?}")));
                }
            }
            Ok(Value::str("ack"))
        })
        .build();
    let l = log.clone();
    steps.push(
        root.call_remote("subscribe", Args::new(vec![Value::Object(callback)]))
            .add_callback_deferred(move |_| notified)
            .add_both(move |r| {
                check(
                    &l,
                    "subscribe calls back notify(\"msg\")",
                    r.is_ok(),
                    format!("{r:?}"),
                );
                Ok(())
            }),
    );
    let l = log.clone();
    steps.push(
        braid_pb::login_anonymous(&root, Value::None)
            .add_callback_deferred(|avatar| avatar.call_remote("whoami", Args::default()))
            .add_both(move |r| {
                check(
                    &l,
                    "anonymous login",
                    r.as_ref().ok() == Some(&Value::str("anonymous")),
                    format!("{r:?}"),
                );
                Ok(())
            }),
    );
    if let Some((name, pw)) = user {
        let l = log.clone();
        let n = name.clone();
        steps.push(
            braid_pb::login(&root, &name, &pw, Value::None)
                .add_callback_deferred(|avatar| avatar.call_remote("whoami", Args::default()))
                .add_both(move |r| {
                    check(
                        &l,
                        "login",
                        r.as_ref().ok() == Some(&Value::str(&n)),
                        format!("{r:?}"),
                    );
                    Ok(())
                }),
        );
        let l = log.clone();
        steps.push(
            braid_pb::login(&root, &name, "wrong password", Value::None).add_both(move |r| {
                let ok =
                    matches!(&r, Err(e) if e.type_name == "twisted.cred.error.UnauthorizedLogin");
                check(&l, "bad login refused", ok, format!("{r:?}"));
                Ok(())
            }),
        );
    }
    braid::gather(steps).add_callback(|_| ())
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut host = "127.0.0.1".to_owned();
    let mut port = 8787u16;
    let mut user = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--host" => host = it.next().expect("--host H").clone(),
            "--port" => port = it.next().and_then(|p| p.parse().ok()).expect("--port N"),
            "--user" => {
                let (n, p) = it
                    .next()
                    .and_then(|s| s.split_once(':'))
                    .expect("--user NAME:PASSWORD");
                user = Some((n.to_owned(), p.to_owned()));
            }
            other => {
                eprintln!("pb_client: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let reactor = Reactor::new()?;
    let factory = PbClientFactory::new();
    let root = factory.root_object();
    reactor.connect_tcp_host(&host, port, factory, Some(Duration::from_secs(10)));
    let log: Log = Rc::default();
    let (l, r) = (log.clone(), reactor.clone());
    root.add_callback_deferred(move |root| run(root, user, l))
        .add_both(move |res| {
            if let Err(e) = res {
                println!("FAILED connect: {e}");
            }
            r.stop();
            Ok::<(), PbError>(())
        });
    let r = reactor.clone();
    reactor.call_later(Duration::from_secs(30), move || {
        println!("FAILED: timed out");
        r.stop();
    });
    reactor.run()?;
    let failed = log.borrow().iter().filter(|c| !c.1).count();
    let total = log.borrow().len();
    println!("{} of {total} checks passed", total - failed);
    std::process::exit(if failed == 0 && total > 0 { 0 } else { 1 });
}
