//! TCP forwarding through the server: `direct-tcpip` channels (`ssh -L`:
//! the server connects where the client asks) and `tcpip-forward`
//! (`ssh -R`: the server listens on loopback and opens a
//! `forwarded-tcpip` channel for each connection). Both ends are braid
//! transports joined by two small protocols, each pausing the other's
//! reading while its own queue is full.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use braid::{
    Address, ClientFactory, CloseReason, ConnectError, Connector, Factory, PauseReading, Protocol,
    Transport,
};

/// A TCP transport's peer as SSH's originator fields want it.
pub(crate) fn originator(t: &Transport) -> (String, u32) {
    match t.peer_addr() {
        Address::Tcp(a) => (a.ip().to_string(), u32::from(a.port())),
        _ => ("127.0.0.1".to_owned(), 0),
    }
}

/// The channel's side: what the client sends goes to the TCP peer.
pub(crate) struct ChannelToTcp {
    pub(crate) tcp: Transport,
    pub(crate) tcp_side: Rc<RefCell<Option<Transport>>>,
}

impl Protocol for ChannelToTcp {
    fn connection_made(&mut self, channel: &Transport) {
        *self.tcp_side.borrow_mut() = Some(channel.clone());
        let _ = self
            .tcp
            .register_producer(Rc::new(PauseReading(channel.clone())), true);
        let _ = channel.register_producer(Rc::new(PauseReading(self.tcp.clone())), true);
        // The TCP side waited (paused) for the channel; now it may read.
        self.tcp.resume_reading();
    }
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.tcp.write(data);
    }
    fn read_eof(&mut self, _: &Transport) {
        self.tcp.lose_write_connection();
    }
    fn connection_lost(&mut self, _: &CloseReason) {
        self.tcp.lose_connection();
    }
}

/// Told of a TCP connection once it is made.
pub(crate) type OnConnect = Box<dyn FnOnce(&Transport)>;

/// The TCP side: what the peer sends goes into the channel.
pub(crate) struct TcpToChannel {
    pub(crate) channel: Rc<RefCell<Option<Transport>>>,
    /// Told of the connection once made (to open the channel).
    pub(crate) on_connect: Option<OnConnect>,
}

impl Protocol for TcpToChannel {
    fn connection_made(&mut self, t: &Transport) {
        // Nothing is read until the channel is there to take it.
        t.pause_reading();
        if let Some(f) = self.on_connect.take() {
            f(t);
        }
    }
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        if let Some(c) = self.channel.borrow().as_ref() {
            c.write(data);
        }
    }
    fn read_eof(&mut self, _: &Transport) {
        if let Some(c) = self.channel.borrow().as_ref() {
            c.lose_write_connection();
        }
    }
    fn connection_lost(&mut self, _: &CloseReason) {
        if let Some(c) = self.channel.borrow_mut().take() {
            c.lose_connection();
        }
    }
}

/// What a forwarding asks of its connection.
pub(crate) trait ForwardHost {
    /// A `direct-tcpip` connection is made (`Some`) or failed (`None`).
    fn direct_result(&self, num: u32, tcp: Option<(Transport, Rc<RefCell<Option<Transport>>>)>);
    /// A connection arrived on a forwarded port.
    fn forwarded_connection(
        &self,
        listen: (String, u32),
        tcp: Transport,
        side: Rc<RefCell<Option<Transport>>>,
    );
}

/// Connects a `direct-tcpip` channel's TCP side.
pub(crate) struct DirectConnect {
    pub(crate) host: Weak<dyn ForwardHost>,
    pub(crate) num: u32,
    pub(crate) side: Rc<RefCell<Option<Transport>>>,
}

impl Factory for DirectConnect {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        let host = self.host.clone();
        let num = self.num;
        let side = self.side.clone();
        Some(Box::new(TcpToChannel {
            channel: self.side.clone(),
            on_connect: Some(Box::new(move |t: &Transport| {
                if let Some(h) = host.upgrade() {
                    h.direct_result(num, Some((t.clone(), side)));
                }
            })),
        }))
    }
}

impl ClientFactory for DirectConnect {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        tracing::info!(error = %reason, "direct-tcpip connect failed");
        if let Some(h) = self.host.upgrade() {
            h.direct_result(self.num, None);
        }
    }
}

/// Accepts connections on a forwarded port.
pub(crate) struct ForwardedPort {
    pub(crate) host: Weak<dyn ForwardHost>,
    /// The address as the client asked and the port bound (the client
    /// matches forwarded channels on them).
    pub(crate) address: String,
    pub(crate) port: Rc<std::cell::Cell<u32>>,
}

impl Factory for ForwardedPort {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        let host = self.host.clone();
        let listen = (self.address.clone(), self.port.get());
        let side = Rc::new(RefCell::new(None));
        let s2 = side.clone();
        Some(Box::new(TcpToChannel {
            channel: side,
            on_connect: Some(Box::new(move |t: &Transport| match host.upgrade() {
                Some(h) => h.forwarded_connection(listen, t.clone(), s2),
                None => t.lose_connection(),
            })),
        }))
    }
}
