//! A host guard dropped before its host ever dispatched, while the reactor
//! has work, is reported once in the log naming the likely cause (the
//! gtk-rs habit of ignoring a returned handle); a guard that did its job is
//! not.

use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use braid::{Budget, HostLoop, Reactor};

struct Quiet;
impl HostLoop for Quiet {
    fn reactor_stopped(&self) {}
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);
impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let o = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || o.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = out.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_guard_dropped_before_any_dispatch_with_work_waiting_is_reported() {
    let reactor = Reactor::new().unwrap();
    let _timer = reactor.call_later(Duration::from_secs(1), || {});
    let log = logged(|| {
        // What `braid_glib::attach(&reactor, &ctx).expect("attach");` does.
        drop(reactor.attach_host(Rc::new(Quiet)).unwrap());
    });
    assert!(log.contains("detached before it ever dispatched"), "{log}");
    assert!(
        log.contains("let _attached"),
        "the log says what to do: {log}"
    );
}

#[test]
fn a_guard_that_dispatched_or_had_nothing_to_do_is_not_reported() {
    let reactor = Reactor::new().unwrap();
    let log = logged(|| {
        // Nothing waits: no warning.
        drop(reactor.attach_host(Rc::new(Quiet)).unwrap());
        // Work, and the host dispatched it: detaching later is normal.
        let _timer = reactor.call_later(Duration::from_secs(1), || {});
        let guard = reactor.attach_host(Rc::new(Quiet)).unwrap();
        reactor.dispatch(Budget::default());
        drop(guard);
    });
    assert!(!log.contains("detached before"), "{log}");
}
