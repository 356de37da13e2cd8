//! A Perspective Broker server that Python Twisted clients can call.
//!
//! ```text
//! cargo run -p braid-pb --example pb_server -- --port 8787 --user alice:secret
//!     [--user NAME:PASSWORD]...   users for Twisted's login (MD5 challenge)
//!     [--users FILE]              an argon2 password file (`braid passwd`) for loginPassword
//!     [--plain-password]          allow loginPassword without TLS
//! ```
//!
//! One root object serves the application and login, as Twisted's
//! `PBServerFactory(portal)` does:
//! - `echo(x)` returns `x`; `add(a, b)` (keywords too) returns `a + b`
//!   exactly as Python computes it (integers of any size, floats, str,
//!   bytes, lists, tuples; Python's TypeError otherwise);
//!   `fail()` raises `ValueError("intentional failure")`;
//!   `subscribe(ref)` answers `"subscribed"` and calls `ref.notify("msg")`
//!   50 ms later, printing the answer;
//! - `login(user)` / `respond(...)` and `loginAnonymous(mind)` give an
//!   avatar whose `whoami()` is the user name, or `"anonymous"`.
//!
//! Port 0 picks a free port; the port is printed as `listening PORT`.

use std::io::Write;
use std::time::Duration;

use braid::Reactor;
use braid_cred::{AnonymousChecker, InMemoryChecker, PasswordFileChecker, Portal};
use braid_pb::banana::BigInt;
use braid_pb::{Args, LoginRoot, Object, PbError, PbServerFactory, Value};

/// Python's name for a value's type, as its error messages say it.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::None => "NoneType",
        Value::Remote(_) => "RemoteReference",
        other => other.kind(),
    }
}

/// An integer (bool counts, as in Python) as a big integer.
fn as_int(v: &Value) -> Option<BigInt> {
    match v {
        Value::Bool(b) => Some(BigInt::from_i128(*b as i128)),
        Value::Int(i) => Some(BigInt::from_i128(*i as i128)),
        Value::BigInt(b) => Some(b.clone()),
        _ => None,
    }
}

/// An integer result, as small as it fits (as PB sends it).
fn int_value(b: BigInt) -> Value {
    match b.to_i64() {
        Some(i) => Value::Int(i),
        None => Value::BigInt(b),
    }
}

fn type_error(msg: String) -> PbError {
    PbError::new("builtins.TypeError", msg)
}

/// `a + b` as Python computes it: integers of any size (and bools), floats,
/// and concatenation of str, bytes, lists and tuples, with Python's own
/// TypeError messages for the rest.
fn add(a: &Value, b: &Value) -> Result<Value, PbError> {
    use Value::*;
    if let (Some(x), Some(y)) = (as_int(a), as_int(b)) {
        return Ok(int_value(x.add(&y)));
    }
    let float = |v: &Value| match v {
        Float(f) => Some(*f),
        other => as_int(other).map(|i| i.to_f64()),
    };
    Ok(match (a, b) {
        (Float(_), _) | (_, Float(_)) if float(a).is_some() && float(b).is_some() => {
            Float(float(a).unwrap_or(0.0) + float(b).unwrap_or(0.0))
        }
        (Str(x), Str(y)) => Str(format!("{x}{y}")),
        (Bytes(x), Bytes(y)) => Bytes([x.as_slice(), y].concat()),
        (List(x), List(y)) => List(x.iter().chain(y).cloned().collect()),
        (Tuple(x), Tuple(y)) => Tuple(x.iter().chain(y).cloned().collect()),
        (Str(_), other) => {
            return Err(type_error(format!(
                "can only concatenate str (not \"{}\") to str",
                py_type(other)
            )))
        }
        (List(_), other) => {
            return Err(type_error(format!(
                "can only concatenate list (not \"{}\") to list",
                py_type(other)
            )))
        }
        (Tuple(_), other) => {
            return Err(type_error(format!(
                "can only concatenate tuple (not \"{}\") to tuple",
                py_type(other)
            )))
        }
        (Bytes(_), other) => {
            return Err(type_error(format!(
                "can't concat {} to bytes",
                py_type(other)
            )))
        }
        (x, y) => {
            return Err(type_error(format!(
                "unsupported operand type(s) for +: '{}' and '{}'",
                py_type(x),
                py_type(y)
            )))
        }
    })
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = 8787u16;
    let mut users = InMemoryChecker::new();
    let mut file = None;
    let mut plain = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => port = it.next().and_then(|p| p.parse().ok()).expect("--port N"),
            "--user" => {
                let spec = it.next().expect("--user NAME:PASSWORD");
                let (name, pw) = spec.split_once(':').expect("--user NAME:PASSWORD");
                users = users.user(name, pw);
            }
            "--users" => file = Some(it.next().expect("--users FILE").clone()),
            "--plain-password" => plain = true,
            other => {
                eprintln!("pb_server: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let reactor = Reactor::new()?;
    let realm = |user: &str, _mind: Value| {
        let name = user.to_owned();
        let avatar = Object::builder()
            .method("whoami", move |_, _| Ok(Value::str(&name)))
            .build();
        let who = user.to_owned();
        let logout: Box<dyn FnOnce()> = Box::new(move || eprintln!("logout {who}"));
        (avatar, Some(logout))
    };
    let mut portal = Portal::new(&reactor, realm).checker(users);
    if let Some(f) = &file {
        portal = portal.checker(PasswordFileChecker::new(f));
    }
    let portal = portal.checker(AnonymousChecker);
    let r = reactor.clone();
    let app = Object::builder()
        .method("echo", |_, args| Ok(args.require(0, "x")?.clone()))
        .method("add", |_, args| {
            add(args.require(0, "a")?, args.require(1, "b")?)
        })
        .method("fail", |_, _| {
            Err(PbError::value_error("intentional failure"))
        })
        .method("subscribe", move |_, args| {
            let Some(Value::Remote(target)) = args.get(0, "ref").cloned() else {
                return Err(PbError::new(
                    "builtins.TypeError",
                    "subscribe needs a remote object",
                ));
            };
            r.call_later(Duration::from_millis(50), move || {
                target
                    .call_remote("notify", Args::new(vec![Value::str("msg")]))
                    .add_both(|answer| {
                        println!("notify answered {answer:?}");
                        let _ = std::io::stdout().flush();
                        Ok::<(), PbError>(())
                    });
            });
            Ok(Value::str("subscribed"))
        });
    let root = LoginRoot::new(portal)
        .allow_password_without_tls(plain)
        .add_to(app)
        .build();
    let listening =
        reactor.listen_tcp(([127, 0, 0, 1], port).into(), PbServerFactory::new(root))?;
    println!("listening {}", listening.local_addr().port());
    std::io::stdout().flush()?;
    reactor.run()
}
