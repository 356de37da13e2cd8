//! Port forwarding (Twisted's `portforward`): every connection accepted
//! is joined to a new connection to one target.
//!
//! ```text
//!   client ──▶ listener ──▶ forward(): connect to HOST:PORT ──▶ splice(client, target)
//!              (the client's bytes wait, not read, until the target answers;
//!               a client that leaves first cancels the attempt: twisted#7078)
//! ```

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use braid::aio::{Stream, StreamProtocol};
use braid::{Address, Factory, Reactor};

use crate::outbound::{Connect, Tcp};
use crate::splice::splice;

/// Forwards connections to `host:port`.
///
/// ```
/// use braid_proxy::PortForward;
///
/// let reactor = braid::Reactor::new()?;
/// let forward = PortForward::new(&reactor, "127.0.0.1", 5432);
/// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), forward.factory())?;
/// // reactor.run() (or the GUI's own loop) now forwards port.local_addr() to 5432.
/// # let _ = port;
/// # std::io::Result::Ok(())
/// ```
pub struct PortForward {
    reactor: Reactor,
    host: String,
    port: u16,
    timeout: Duration,
    active: Cell<usize>,
    outbound: RefCell<Rc<dyn Connect>>,
}

impl std::fmt::Debug for PortForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortForward")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("active", &self.active.get())
            .finish()
    }
}

impl PortForward {
    /// Forwards to `host` (a name or an address) and `port`; connection
    /// attempts time out after 30 s.
    pub fn new(reactor: &Reactor, host: &str, port: u16) -> Rc<PortForward> {
        Rc::new(PortForward {
            reactor: reactor.clone(),
            host: host.to_owned(),
            port,
            timeout: Duration::from_secs(30),
            active: Cell::new(0),
            outbound: RefCell::new(Rc::new(Tcp)),
        })
    }

    /// Reaches the target through `outbound` instead of TCP.
    pub fn connect_with(self: &Rc<Self>, outbound: impl Connect) -> Rc<Self> {
        *self.outbound.borrow_mut() = Rc::new(outbound);
        self.clone()
    }

    /// Connections being forwarded now.
    pub fn active(&self) -> usize {
        self.active.get()
    }

    /// A factory for any listener.
    pub fn factory(self: &Rc<Self>) -> impl Factory {
        let me = self.clone();
        move |_: &Address| {
            let me = me.clone();
            StreamProtocol::new(move |inbound| {
                let r = me.reactor.clone();
                drop(r.spawn_local(forward(me, inbound)));
            })
        }
    }
}

/// Ready when `stream` is lost (closed both ways or reset).
pub(crate) fn lost(stream: &Stream) -> impl Future<Output = ()> {
    let flag: Rc<(Cell<bool>, RefCell<Option<Waker>>)> = Rc::default();
    let f = flag.clone();
    stream.on_lost(move || {
        f.0.set(true);
        if let Some(w) = f.1.borrow_mut().take() {
            w.wake();
        }
    });
    poll_fn(move |cx| {
        if flag.0.get() {
            Poll::Ready(())
        } else {
            *flag.1.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    })
}

/// Connects to `host:port`, or gives up when `inbound` is lost first.
pub(crate) async fn connect_unless_lost(
    outbound: &dyn Connect,
    reactor: &Reactor,
    inbound: &Stream,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Option<std::io::Result<Stream>> {
    let mut connect = pin!(outbound.connect(reactor, host, port, timeout));
    let mut gone = pin!(lost(inbound));
    poll_fn(|cx| {
        if let Poll::Ready(r) = connect.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        match gone.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn forward(pf: Rc<PortForward>, inbound: Stream) {
    let peer = inbound.peer_addr().to_string();
    let outbound = pf.outbound.borrow().clone();
    match connect_unless_lost(
        &*outbound,
        &pf.reactor,
        &inbound,
        &pf.host,
        pf.port,
        pf.timeout,
    )
    .await
    {
        None => tracing::info!(peer, "client left before the target answered"),
        Some(Err(e)) => {
            tracing::info!(peer, target = %format!("{}:{}", pf.host, pf.port), error = %e, "cannot reach the target");
            inbound.transport().lose_connection();
        }
        Some(Ok(outbound)) => {
            pf.active.set(pf.active.get() + 1);
            let done = splice(inbound, outbound).await;
            pf.active.set(pf.active.get() - 1);
            tracing::debug!(
                peer,
                up = done.a_to_b,
                down = done.b_to_a,
                "forwarded connection ended"
            );
        }
    }
}
