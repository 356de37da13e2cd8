//! The canvas server: keeps the picture, broadcasts strokes and cursors,
//! limits each client's rate, and gives late joiners the picture so far.
//! Runs on any braid reactor: the `braid canvas` command, or inside the
//! demo's own window when no address is given.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::framing::{FramingError, Prefix, PrefixedReceiver, StringContext, StringHandler};
use braid::{Address, CloseReason, ListeningPort, Protocol, Reactor, Transport};

use crate::proto::{
    ClientMsg, Point, ServerMsg, CANVAS_H, CANVAS_W, ERR_HELLO, ERR_MALFORMED, ERR_RATE,
    ERR_VERSION, MAX_FRAME, VERSION,
};

/// User colours, picked in turn.
pub const PALETTE: [u32; 8] = [
    0x00e5_3935,
    0x001e_88e5,
    0x0043_a047,
    0x008e_24aa,
    0x00fb_8c00,
    0x0000_897b,
    0x006d_4c41,
    0x00d8_1b60,
];

/// How the server behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Messages (cursor moves and strokes) per second each client may
    /// send on average.
    pub rate_per_second: f64,
    /// How many it may send at once above the average.
    pub burst: f64,
    /// The picture keeps at most this many points; the oldest strokes go
    /// first.
    pub max_points: usize,
    /// A client whose unsent output exceeds this is dropped (it stopped
    /// reading); the others are not held back.
    pub max_send_queue: usize,
    /// Strokes are appended here and loaded again at start.
    pub save: Option<PathBuf>,
    /// Print one line per event on stdout (for tests).
    pub echo: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            rate_per_second: 240.0,
            burst: 480.0,
            max_points: 1_000_000,
            max_send_queue: 4 << 20,
            save: None,
            echo: false,
        }
    }
}

struct Client {
    name: String,
    colour: u32,
    transport: Transport,
    tokens: f64,
    refilled: Instant,
    last_rate_error: Option<Instant>,
}

struct Stroke {
    id: u32,
    colour: u32,
    width: u8,
    points: Vec<Point>,
}

struct State {
    reactor: Reactor,
    config: ServerConfig,
    next_id: u32,
    clients: BTreeMap<u32, Client>,
    picture: std::collections::VecDeque<Stroke>,
    points: usize,
    save: Option<File>,
    dropped: u64,
}

/// A canvas server; clones share it.
#[derive(Clone)]
pub struct CanvasServer {
    state: Rc<RefCell<State>>,
}

fn frame(msg: &ServerMsg) -> Vec<u8> {
    let payload = msg.encode();
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Reads the strokes saved in `path` (a sequence of length-prefixed
/// `Stroke` frames; only `ServerMsg::Stroke`s come back). A damaged tail
/// is ignored, as after a crash mid-write.
pub fn load_saved(path: &Path) -> io::Result<Vec<ServerMsg>> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 4 {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if n > MAX_FRAME || rest.len() < 4 + n {
            break;
        }
        match ServerMsg::decode(&rest[4..4 + n]) {
            Ok(m @ ServerMsg::Stroke { .. }) => out.push(m),
            _ => break,
        }
        rest = &rest[4 + n..];
    }
    Ok(out)
}

impl CanvasServer {
    /// A server with an empty picture, or the one saved in
    /// `config.save`.
    pub fn new(reactor: &Reactor, config: ServerConfig) -> io::Result<CanvasServer> {
        let mut picture = std::collections::VecDeque::new();
        let mut points = 0;
        let mut save = None;
        if let Some(path) = &config.save {
            for m in load_saved(path)? {
                if let ServerMsg::Stroke {
                    id,
                    colour,
                    width,
                    points: p,
                } = m
                {
                    points += p.len();
                    picture.push_back(Stroke {
                        id,
                        colour,
                        width,
                        points: p,
                    });
                }
            }
            save = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            );
        }
        let server = CanvasServer {
            state: Rc::new(RefCell::new(State {
                reactor: reactor.clone(),
                config,
                next_id: 1,
                clients: BTreeMap::new(),
                picture,
                points,
                save,
                dropped: 0,
            })),
        };
        server.trim();
        Ok(server)
    }

    /// Listens on `addr`.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<ListeningPort> {
        let reactor = self.state.borrow().reactor.clone();
        let me = self.clone();
        reactor.listen_tcp(addr, move |_: &Address| me.protocol())
    }

    /// The protocol for one client connection (over any transport: the
    /// tests use braid's in-memory pair).
    pub fn protocol(&self) -> impl Protocol {
        PrefixedReceiver::new(
            Conn {
                server: self.clone(),
                id: None,
            },
            Prefix::U32,
            MAX_FRAME,
        )
    }

    /// Users connected (after their `Hello`).
    pub fn user_count(&self) -> usize {
        self.state.borrow().clients.len()
    }

    /// Strokes in the picture.
    pub fn stroke_count(&self) -> usize {
        self.state.borrow().picture.len()
    }

    /// Points in the picture.
    pub fn point_count(&self) -> usize {
        self.state.borrow().points
    }

    /// Messages dropped by the rate limit so far.
    pub fn dropped(&self) -> u64 {
        self.state.borrow().dropped
    }

    fn echo(&self, line: String) {
        if self.state.borrow().config.echo {
            println!("{line}");
        }
    }

    fn trim(&self) {
        let mut s = self.state.borrow_mut();
        while s.points > s.config.max_points {
            match s.picture.pop_front() {
                Some(old) => s.points -= old.points.len(),
                None => break,
            }
        }
    }

    /// Sends `msg` to every client but `except`, dropping those that
    /// stopped reading.
    fn broadcast(&self, msg: &ServerMsg, except: Option<u32>) {
        let bytes = frame(msg);
        let (targets, max) = {
            let s = self.state.borrow();
            let t: Vec<(u32, Transport)> = s
                .clients
                .iter()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(id, c)| (*id, c.transport.clone()))
                .collect();
            (t, s.config.max_send_queue)
        };
        for (id, t) in targets {
            if t.write_buffer_len() > max {
                tracing::warn!(
                    id,
                    queued = t.write_buffer_len(),
                    "a client stopped reading; dropping it"
                );
                t.abort_connection();
                continue;
            }
            t.write(&bytes);
        }
    }

    /// Takes one token from `id`'s bucket; false when empty.
    fn allow(&self, id: u32) -> bool {
        let mut s = self.state.borrow_mut();
        let now = s.reactor.now();
        let (rate, burst) = (s.config.rate_per_second, s.config.burst);
        let s = &mut *s;
        let Some(c) = s.clients.get_mut(&id) else {
            return false;
        };
        let dt = now.saturating_duration_since(c.refilled).as_secs_f64();
        c.refilled = now;
        c.tokens = (c.tokens + dt * rate).min(burst);
        if c.tokens >= 1.0 {
            c.tokens -= 1.0;
            return true;
        }
        s.dropped += 1;
        let tell = c
            .last_rate_error
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if tell {
            c.last_rate_error = Some(now);
            let t = c.transport.clone();
            t.write(&frame(&ServerMsg::Error {
                code: ERR_RATE,
                text: "too many messages: some were dropped".into(),
            }));
        }
        false
    }

    fn hello(&self, t: &Transport, version: u16, name: String) -> Option<u32> {
        if version != VERSION {
            t.write(&frame(&ServerMsg::Error {
                code: ERR_VERSION,
                text: format!(
                    "this server speaks canvas protocol version {VERSION}, not {version}"
                ),
            }));
            t.lose_connection();
            return None;
        }
        let name = if name.trim().is_empty() {
            "anonymous".to_owned()
        } else {
            name.trim().to_owned()
        };
        let (id, colour, snapshot, others) = {
            let mut s = self.state.borrow_mut();
            let id = s.next_id;
            s.next_id += 1;
            let colour = PALETTE[(id as usize - 1) % PALETTE.len()];
            let now = s.reactor.now();
            let burst = s.config.burst;
            let snapshot: Vec<u8> = s
                .picture
                .iter()
                .flat_map(|st| {
                    frame(&ServerMsg::Stroke {
                        id: st.id,
                        colour: st.colour,
                        width: st.width,
                        points: st.points.clone(),
                    })
                })
                .collect();
            let others: Vec<u8> = s
                .clients
                .iter()
                .flat_map(|(oid, c)| {
                    frame(&ServerMsg::Joined {
                        id: *oid,
                        colour: c.colour,
                        name: c.name.clone(),
                    })
                })
                .collect();
            s.clients.insert(
                id,
                Client {
                    name: name.clone(),
                    colour,
                    transport: t.clone(),
                    tokens: burst,
                    refilled: now,
                    last_rate_error: None,
                },
            );
            (id, colour, snapshot, others)
        };
        t.write(&frame(&ServerMsg::Welcome {
            version: VERSION,
            id,
            colour,
            width: CANVAS_W,
            height: CANVAS_H,
        }));
        t.write(&snapshot);
        t.write(&others);
        t.write(&frame(&ServerMsg::Joined {
            id,
            colour,
            name: name.clone(),
        }));
        t.write(&frame(&ServerMsg::Ready));
        self.broadcast(
            &ServerMsg::Joined {
                id,
                colour,
                name: name.clone(),
            },
            Some(id),
        );
        self.echo(format!("joined\t{id}\t{name}\t{}", self.user_count()));
        Some(id)
    }

    fn stroke(&self, id: u32, width: u8, points: Vec<Point>) {
        let (colour, msg) = {
            let s = self.state.borrow();
            let Some(c) = s.clients.get(&id) else { return };
            let colour = c.colour;
            (
                colour,
                ServerMsg::Stroke {
                    id,
                    colour,
                    width,
                    points: points.clone(),
                },
            )
        };
        let n = points.len();
        {
            let mut s = self.state.borrow_mut();
            if let Some(f) = s.save.as_mut() {
                if let Err(e) = f.write_all(&frame(&msg)) {
                    tracing::warn!(error = %e, "cannot save a stroke; no longer saving");
                    s.save = None;
                }
            }
            s.points += n;
            s.picture.push_back(Stroke {
                id,
                colour,
                width,
                points,
            });
        }
        self.trim();
        self.broadcast(&msg, Some(id));
        self.echo(format!(
            "stroke\t{id}\t{n}\t{}\t{}",
            self.stroke_count(),
            self.point_count()
        ));
    }

    fn left(&self, id: u32) {
        let gone = self.state.borrow_mut().clients.remove(&id);
        if gone.is_some() {
            self.broadcast(&ServerMsg::Left { id }, None);
            self.echo(format!("left\t{id}\t{}", self.user_count()));
        }
    }
}

struct Conn {
    server: CanvasServer,
    id: Option<u32>,
}

impl Conn {
    fn refuse(&self, t: &Transport, code: u16, text: String) {
        tracing::info!(peer = %t.peer_addr(), %text, "refusing a canvas client");
        t.write(&frame(&ServerMsg::Error { code, text }));
        t.lose_connection();
    }
}

impl StringHandler for Conn {
    fn connection_made(&mut self, ctx: &StringContext<'_>) {
        let _ = ctx.transport().set_nodelay(true);
    }

    fn string_received(&mut self, ctx: &StringContext<'_>, data: &[u8]) {
        let t = ctx.transport();
        if t.is_disconnecting() {
            return;
        }
        let msg = match ClientMsg::decode(data) {
            Ok(m) => m,
            Err(e) => return self.refuse(t, ERR_MALFORMED, format!("bad message: {e}")),
        };
        let Some(id) = self.id else {
            match msg {
                ClientMsg::Hello { version, name } => {
                    self.id = self.server.hello(t, version, name);
                }
                _ => self.refuse(t, ERR_HELLO, "say Hello first".into()),
            }
            return;
        };
        match msg {
            ClientMsg::Hello { .. } => self.refuse(t, ERR_HELLO, "Hello twice".into()),
            ClientMsg::Ping { token } => t.write(&frame(&ServerMsg::Pong { token })),
            ClientMsg::Cursor { x, y } => {
                if self.server.allow(id) {
                    self.server
                        .broadcast(&ServerMsg::Cursor { id, x, y }, Some(id));
                }
            }
            ClientMsg::Stroke { width, points } => {
                if self.server.allow(id) {
                    self.server.stroke(id, width, points);
                }
            }
        }
    }

    fn framing_error(&mut self, ctx: &StringContext<'_>, error: FramingError) {
        self.refuse(
            ctx.transport(),
            ERR_MALFORMED,
            format!("bad frame: {error}"),
        );
    }

    fn connection_lost(&mut self, _reason: &CloseReason) {
        if let Some(id) = self.id.take() {
            self.server.left(id);
        }
    }
}
