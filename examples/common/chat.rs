//! The line chat protocol shared by the chat examples: each line a client
//! says goes to every other client, prefixed with the sayer's name.
//!
//! Commands: `/nick NAME` renames you, `/who` lists who is here.

use std::cell::RefCell;
use std::rc::Rc;

use braid::framing::{FramingError, LineContext, LineHandler, LineReceiver};
use braid::{Address, CloseReason, Factory, Protocol, Transport};

/// Everyone connected, by name.
#[derive(Default)]
pub struct Room {
    members: Vec<(u64, String, Transport)>,
    next_id: u64,
}

impl Room {
    fn broadcast(&self, from: u64, line: &[u8]) {
        for (id, _, t) in &self.members {
            if *id != from {
                t.write_sequence(&[line, b"\r\n"]);
            }
        }
    }

    fn name_taken(&self, name: &str) -> bool {
        self.members.iter().any(|(_, n, _)| n == name)
    }
}

/// One chat connection, server side.
pub struct ChatUser {
    room: Rc<RefCell<Room>>,
    id: u64,
    name: String,
}

impl LineHandler for ChatUser {
    fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
        let mut room = self.room.borrow_mut();
        self.id = room.next_id;
        room.next_id += 1;
        self.name = format!("guest{}", self.id);
        ctx.send_line(
            format!(
                "* welcome, {}. /nick NAME to rename, /who to list.",
                self.name
            )
            .as_bytes(),
        );
        room.broadcast(self.id, format!("* {} joined", self.name).as_bytes());
        room.members
            .push((self.id, self.name.clone(), ctx.transport().clone()));
    }

    fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if let Some(new) = text.strip_prefix("/nick ") {
            let new = new.trim();
            let mut room = self.room.borrow_mut();
            if new.is_empty() || new.len() > 32 || new.contains(char::is_whitespace) {
                ctx.send_line(b"* a name is 1-32 characters without spaces");
            } else if room.name_taken(new) {
                ctx.send_line(format!("* {new} is taken").as_bytes());
            } else {
                room.broadcast(self.id, format!("* {} is now {new}", self.name).as_bytes());
                self.name = new.to_owned();
                if let Some(m) = room.members.iter_mut().find(|m| m.0 == self.id) {
                    m.1 = self.name.clone();
                }
                ctx.send_line(format!("* you are now {new}").as_bytes());
            }
        } else if text == "/who" {
            let room = self.room.borrow();
            let names: Vec<&str> = room.members.iter().map(|m| m.1.as_str()).collect();
            ctx.send_line(format!("* here: {}", names.join(", ")).as_bytes());
        } else if !text.is_empty() {
            let said = format!("{}: {text}", self.name);
            self.room.borrow().broadcast(self.id, said.as_bytes());
        }
    }

    fn line_length_exceeded(&mut self, ctx: &mut LineContext<'_>, error: FramingError) {
        ctx.send_line(format!("* {error}; line dropped").as_bytes());
    }

    fn connection_lost(&mut self, _reason: &CloseReason) {
        let mut room = self.room.borrow_mut();
        room.members.retain(|m| m.0 != self.id);
        room.broadcast(self.id, format!("* {} left", self.name).as_bytes());
    }
}

/// The server's factory: every connection joins one room.
pub fn chat_factory() -> impl Factory {
    let room = Rc::new(RefCell::new(Room::default()));
    move |_: &Address| {
        LineReceiver::with_delimiter(
            ChatUser {
                room: room.clone(),
                id: 0,
                name: String::new(),
            },
            b"\n",
            4096,
        )
    }
}

/// Client side: prints every line it receives, keeps the transport for
/// whoever wants to write.
pub struct Printer {
    pub transport: Rc<RefCell<Option<Transport>>>,
}

impl Protocol for Printer {
    fn connection_made(&mut self, t: &Transport) {
        *self.transport.borrow_mut() = Some(t.clone());
        eprintln!("-- connected to {}", t.peer_addr());
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(
            &data
                .iter()
                .copied()
                .filter(|&b| b != b'\r')
                .collect::<Vec<u8>>(),
        );
        let _ = out.flush();
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        self.transport.borrow_mut().take();
        eprintln!("-- disconnected: {reason}");
    }
}
