//! A Perspective Broker server that Python Twisted clients can call.
//!
//! ```text
//! cargo run --features pb --example pb_server -- --port 8787 --user alice:secret
//!     [--user NAME:PASSWORD]...   users for Twisted's login (MD5 challenge)
//!     [--users FILE]              an argon2 password file (`braid passwd`) for loginPassword
//!     [--plain-password]          allow loginPassword without TLS
//! ```
//!
//! One root object serves the application and login, as Twisted's
//! `PBServerFactory(portal)` does:
//! - `echo(x)` returns `x`; `add(a, b)` (keywords too) returns `a + b`;
//!   `fail()` raises `ValueError("intentional failure")`;
//!   `subscribe(ref)` calls `ref.notify("msg")` 50 ms later and prints the
//!   answer;
//! - `login(user)` / `respond(...)` and `loginAnonymous(mind)` give an
//!   avatar whose `whoami()` is the user name, or `"anonymous"`.
//!
//! Port 0 picks a free port; the port is printed as `listening PORT`.

use std::io::Write;
use std::time::Duration;

use braid::Reactor;
use braid_cred::{AnonymousChecker, InMemoryChecker, PasswordFileChecker, Portal};
use braid_pb::{Args, LoginRoot, Object, PbError, PbServerFactory, Value};

fn number(v: &Value) -> Result<Value, PbError> {
    match v {
        Value::Int(_) | Value::Float(_) => Ok(v.clone()),
        other => Err(PbError::new(
            "builtins.TypeError",
            format!("add() needs numbers, not {}", other.kind()),
        )),
    }
}

fn add(a: &Value, b: &Value) -> Result<Value, PbError> {
    Ok(match (number(a)?, number(b)?) {
        (Value::Int(x), Value::Int(y)) => x
            .checked_add(y)
            .map(Value::Int)
            .ok_or_else(|| PbError::new("builtins.OverflowError", "too large"))?,
        (Value::Int(x), Value::Float(y)) => Value::Float(x as f64 + y),
        (Value::Float(x), Value::Int(y)) => Value::Float(x + y as f64),
        (Value::Float(x), Value::Float(y)) => Value::Float(x + y),
        _ => unreachable!("numbers"),
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
            Ok(Value::None)
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
