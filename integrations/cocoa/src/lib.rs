//! # braid-cocoa
//!
//! Hosts a braid `Reactor` in a thread's `CFRunLoop`: the run loop under
//! every macOS application (AppKit's `NSApplication`, winit, Tauri, a
//! command-line tool's `CFRunLoopRun`). Sockets, timers and protocols then
//! run on the main thread, in the application's own loop, with no second
//! thread and no channels.
//!
//! ```text
//!   CFRunLoop (the main thread's; AppKit and winit run it)
//!     └─ CFFileDescriptor on Reactor::as_fd()  (the poller: a kqueue,
//!          │  readable while it holds an event; braid's timers are
//!          │  EVFILT_TIMER inside it, so no CFRunLoopTimer is needed)
//!          │  source in kCFRunLoopCommonModes: also runs during live
//!          │  resize, menu tracking and modal panels
//!          ▼ read callback (one-shot)
//!   Reactor::dispatch(budget), then the callback is enabled again
//!   Reactor::stop() ─▶ HostLoop::reactor_stopped ─▶ your on_stop
//!                                                   (NSApp terminate, ...)
//! ```
//!
//! ```ignore
//! let reactor = braid::Reactor::new()?;
//! let attached = braid_cocoa::attach(&reactor)?; // this thread's run loop
//! attached.stop_run_loop_on_stop();             // a tool's CFRunLoopRun ends
//! // ... listen_tcp / connect_tcp / call_later as usual ...
//! attached.run();                               // CFRunLoopRun until then
//! ```
//!
//! In an AppKit app, attach on the main thread before `[NSApp run]` (or in
//! `applicationDidFinishLaunching:`) and keep the guard; `braid-winit`
//! does this on macOS, so a winit app gets it through
//! `braid_winit::run_app`.
//!
//! ## Status
//!
//! Type-checked for `aarch64-apple-darwin` and `x86_64-apple-darwin` in
//! CI; **not yet run on a Mac** (no macOS machine is available to the
//! project). The kqueue pieces under it (the reactor's poller, its
//! `EVFILT_TIMER` timers and `EVFILT_PROC` child exits) are type-checked
//! the same way; the same poller code runs on Linux's epoll in CI.
//!
//! On other platforms this crate is empty.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(target_vendor = "apple")]
mod apple;
#[cfg(target_vendor = "apple")]
pub use apple::*;
