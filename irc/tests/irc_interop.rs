//! Interoperability with real IRC software: braid's client through
//! Debian's ngircd (started here on a free loopback port).

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::{Reactor, ReconnectingClientFactory};
use braid_irc::{ClientConfig, IrcClient, IrcEvent};

struct Daemon(Child, PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

fn start_ngircd() -> (Daemon, u16) {
    let exe = ["/usr/sbin/ngircd", "/usr/bin/ngircd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "ngircd is not installed: run the suite through ./scripts/test.sh, which installs it",
        );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut conf = std::env::current_exe().unwrap();
    conf.pop();
    conf.push(format!("ngircd-{}.conf", std::process::id()));
    let pid = conf.with_extension("pid");
    std::fs::write(
        &conf,
        format!(
            "[Global]\nName = irc.interop.test\nInfo = braid interop test\nListen = 127.0.0.1\nPorts = {port}\n\
             PidFile = {}\nServerUID = 65534\nServerGID = 65534\n\
             [Limits]\nMaxConnectionsIP = 0\n[Options]\nDNS = no\nIdent = no\nPAM = no\n",
            pid.display()
        ),
    )
    .unwrap();
    let child = Command::new(exe)
        .args(["--nodaemon", "--config"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ngircd");
    (Daemon(child, conf), port)
}

type Events = Rc<RefCell<Vec<IrcEvent>>>;

fn client(
    reactor: &Reactor,
    nick: &str,
    port: u16,
) -> (
    IrcClient,
    Events,
    ReconnectingClientFactory<impl braid::ClientFactory>,
) {
    let events = Events::default();
    let e = events.clone();
    let c = IrcClient::new(ClientConfig::new(nick), move |client, event| {
        if let IrcEvent::Registered { .. } = event {
            client.join("#interop");
        }
        e.borrow_mut().push(event);
    });
    // ngircd may still be starting: retry quickly until it answers.
    let factory = ReconnectingClientFactory::new(c.factory())
        .initial_delay(Duration::from_millis(50))
        .factor(1.5)
        .jitter(0.0);
    let control = factory.clone();
    reactor.connect_tcp(
        ([127, 0, 0, 1], port).into(),
        factory,
        Some(Duration::from_secs(5)),
    );
    (c, events, control)
}

#[test]
fn braid_clients_chat_through_a_real_ngircd() {
    let (_daemon, port) = start_ngircd();
    let reactor = Reactor::new().unwrap();
    let limit = Duration::from_secs(30);
    let (ann, ann_ev, ann_ctl) = client(&reactor, "braidann", port);
    run_until(&reactor, limit, || ann.members("#interop").len() == 1).unwrap();
    let (ben, ben_ev, ben_ctl) = client(&reactor, "braidben", port);
    run_until(&reactor, limit, || {
        ann.members("#interop").len() == 2 && ben.members("#interop").len() == 2
    })
    .unwrap();
    assert_eq!(ann.members("#interop"), vec!["braidann", "braidben"]);

    ann.say("#interop", "hello through ngircd");
    ben.action("#interop", "waves back");
    ben.say("braidann", "a private word");
    ann.set_topic("#interop", "braid meets ngircd");
    let got = |ev: &Events, want: &IrcEvent| ev.borrow().contains(want);
    run_until(&reactor, limit, || {
        got(
            &ben_ev,
            &IrcEvent::Message {
                from: "braidann".into(),
                target: "#interop".into(),
                text: "hello through ngircd".into(),
            },
        ) && got(
            &ann_ev,
            &IrcEvent::Action {
                from: "braidben".into(),
                target: "#interop".into(),
                text: "waves back".into(),
            },
        ) && got(
            &ann_ev,
            &IrcEvent::Message {
                from: "braidben".into(),
                target: "braidann".into(),
                text: "a private word".into(),
            },
        ) && ben.topic("#interop").as_deref() == Some("braid meets ngircd")
    })
    .unwrap();

    // ngircd enforces RFC 1459's 9-character nick limit.
    ben.set_nick("braidbob");
    run_until(&reactor, limit, || {
        ann.members("#interop").contains(&"braidbob".to_string())
    })
    .unwrap();
    ben_ctl.stop_trying();
    ben.quit("done");
    run_until(&reactor, limit, || {
        ann.members("#interop") == vec!["braidann".to_string()]
    })
    .unwrap();
    assert!(ann_ev
        .borrow()
        .iter()
        .any(|e| matches!(e, IrcEvent::Quit { nick, .. } if nick == "braidbob")));
    ann_ctl.stop_trying();
    ann.quit("bye");
    run_until(&reactor, limit, || {
        matches!(ann_ev.borrow().last(), Some(IrcEvent::Disconnected { .. }))
    })
    .unwrap();
}
