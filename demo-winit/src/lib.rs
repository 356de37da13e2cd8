//! braid's winit demo: a shared canvas. Each user's pointer shows on every
//! screen as a coloured cursor with their name, and strokes drawn with the
//! mouse appear everywhere. The window (winit + softbuffer) and braid's
//! reactor share the main thread through `braid-winit`: no network
//! thread.
//!
//! ```text
//!   winit events ──▶ App ──(once per frame)──▶ CanvasClient ──▶ TCP ──▶ CanvasServer
//!        ▲            │                             │                   (picture, rate limit,
//!        └── redraw ◀─┴── Model ◀── CanvasEvent ◀───┘                    broadcast)
//! ```
//!
//! The wire format is in [`proto`] (length-prefixed frames, versioned);
//! the server in [`server`] also runs as `braid canvas`.

pub mod client;
#[cfg(feature = "gui")]
pub mod gui;
pub mod picture;
pub mod proto;
pub mod server;
