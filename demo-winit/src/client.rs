//! The canvas client protocol: a handle the window keeps (to send cursor
//! moves and strokes) and typed events for its handler, like braid's
//! `IrcClient`.

use std::cell::RefCell;
use std::rc::Rc;

use braid::framing::{FramingError, Prefix, PrefixedReceiver, StringContext, StringHandler};
use braid::{Address, ClientFactory, CloseReason, Protocol, Transport};

use crate::proto::{ClientMsg, Point, ServerMsg, MAX_FRAME, MAX_POINTS, VERSION};

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanvasEvent {
    /// The server accepted us; the picture follows (the old one should be
    /// cleared: this is also what a reconnection brings).
    Welcome {
        /// Our id.
        id: u32,
        /// Our colour.
        colour: u32,
    },
    /// Any other message from the server.
    Message(ServerMsg),
    /// The server's bytes made no sense; the connection is being closed.
    ProtocolError(String),
    /// The connection ended.
    Disconnected(String),
}

type Handler = Box<dyn FnMut(&CanvasClient, CanvasEvent)>;

struct State {
    name: String,
    transport: Option<Transport>,
    handler: Option<Handler>,
    queue: Vec<CanvasEvent>,
}

/// A canvas client; clones share it. One connection at a time (wrap
/// [`factory`](Self::factory) in a `ReconnectingClientFactory`).
#[derive(Clone)]
pub struct CanvasClient {
    inner: Rc<RefCell<State>>,
}

fn send(t: &Transport, msg: &ClientMsg) {
    let payload = msg.encode();
    t.write_sequence(&[&(payload.len() as u32).to_be_bytes(), &payload]);
}

impl CanvasClient {
    /// A client named `name` reporting to `handler`.
    pub fn new(name: &str, handler: impl FnMut(&CanvasClient, CanvasEvent) + 'static) -> Self {
        CanvasClient {
            inner: Rc::new(RefCell::new(State {
                name: name.to_owned(),
                transport: None,
                handler: Some(Box::new(handler)),
                queue: Vec::new(),
            })),
        }
    }

    /// A client factory for this client's connections.
    pub fn factory(&self) -> impl ClientFactory {
        let me = self.clone();
        move |_: &Address| me.protocol()
    }

    /// The protocol for one connection.
    pub fn protocol(&self) -> impl Protocol {
        PrefixedReceiver::new(
            Conn {
                client: self.clone(),
            },
            Prefix::U32,
            MAX_FRAME,
        )
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.borrow().transport.is_some()
    }

    fn send(&self, msg: &ClientMsg) -> bool {
        let t = self.inner.borrow().transport.clone();
        match t {
            Some(t) => {
                send(&t, msg);
                true
            }
            None => false,
        }
    }

    /// Tells the others where our pointer is.
    pub fn cursor(&self, x: u16, y: u16) -> bool {
        self.send(&ClientMsg::Cursor { x, y })
    }

    /// Sends a polyline (split into messages of at most `MAX_POINTS`,
    /// each starting where the last ended so the line stays joined).
    pub fn stroke(&self, width: u8, points: &[Point]) -> bool {
        let mut sent = true;
        let mut start = 0;
        while start < points.len() {
            let end = (start + MAX_POINTS).min(points.len());
            sent &= self.send(&ClientMsg::Stroke {
                width,
                points: points[start..end].to_vec(),
            });
            if end == points.len() {
                break;
            }
            start = end - 1;
        }
        sent
    }

    /// Asks for a `Pong` carrying `token`.
    pub fn ping(&self, token: u64) -> bool {
        self.send(&ClientMsg::Ping { token })
    }

    fn emit(&self, e: CanvasEvent) {
        self.inner.borrow_mut().queue.push(e);
    }

    fn deliver(&self) {
        let Some(mut handler) = self.inner.borrow_mut().handler.take() else {
            return;
        };
        loop {
            let batch = std::mem::take(&mut self.inner.borrow_mut().queue);
            if batch.is_empty() {
                break;
            }
            for e in batch {
                handler(self, e);
            }
        }
        self.inner.borrow_mut().handler = Some(handler);
    }
}

struct Conn {
    client: CanvasClient,
}

impl StringHandler for Conn {
    fn connection_made(&mut self, ctx: &StringContext<'_>) {
        let t = ctx.transport().clone();
        let _ = t.set_nodelay(true);
        let name = self.client.inner.borrow().name.clone();
        send(
            &t,
            &ClientMsg::Hello {
                version: VERSION,
                name,
            },
        );
        self.client.inner.borrow_mut().transport = Some(t);
    }

    fn string_received(&mut self, ctx: &StringContext<'_>, data: &[u8]) {
        if ctx.transport().is_disconnecting() {
            return;
        }
        match ServerMsg::decode(data) {
            Ok(ServerMsg::Welcome { id, colour, .. }) => {
                self.client.emit(CanvasEvent::Welcome { id, colour });
            }
            Ok(m) => self.client.emit(CanvasEvent::Message(m)),
            Err(e) => {
                self.client.emit(CanvasEvent::ProtocolError(format!(
                    "bad message from the server: {e}"
                )));
                ctx.transport().lose_connection();
            }
        }
        self.client.deliver();
    }

    fn framing_error(&mut self, ctx: &StringContext<'_>, error: FramingError) {
        self.client.emit(CanvasEvent::ProtocolError(format!(
            "bad frame from the server: {error}"
        )));
        ctx.transport().lose_connection();
        self.client.deliver();
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        self.client.inner.borrow_mut().transport = None;
        self.client
            .emit(CanvasEvent::Disconnected(reason.to_string()));
        self.client.deliver();
    }
}
