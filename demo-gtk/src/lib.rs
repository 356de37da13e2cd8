//! braid's flagship demo: a GTK4 IRC chat client whose network runs
//! inside GTK's own main loop, on the GUI thread, through `braid-glib`.
//!
//! ```text
//!   GTK widgets ──(entry, buttons)──▶ Session ──▶ IrcClient ──▶ Transport (TCP)
//!        ▲                               │              ▲
//!        └──────── View (ui::GtkView) ◀──┘ IrcEvent ────┘
//!                                        │
//!                                        └─▶ ChatLog ──▶ braid's DB pool (SQLite, worker thread)
//! ```
//!
//! Everything but SQLite runs on the main thread: the reactor is a source
//! in GTK's `MainContext`. With no server address the app also runs
//! braid's IRC server in that same reactor ([`embedded`]).

pub mod command;
pub mod embedded;
pub mod history;
pub mod model;
pub mod session;
pub mod ui;
