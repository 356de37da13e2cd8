//! The X11 pending-queue check (docs/architecture.md, fact 4): after a pump, events that
//! Xlib already read into its queue do not make winit's fd readable, so a
//! resize could wait seconds for the next unrelated wakeup. `XPending`
//! tells whether to pump again.

use std::os::raw::c_void;

use winit::event_loop::EventLoop;
use winit::raw_window_handle::{HasDisplayHandle, RawDisplayHandle};

pub(crate) struct XPending {
    xlib: x11_dl::xlib::Xlib,
    display: *mut c_void,
}

impl XPending {
    /// `Some` when the loop runs on X11 and libX11 loads.
    pub(crate) fn for_loop<T: 'static>(event_loop: &EventLoop<T>) -> Option<XPending> {
        let handle = event_loop.display_handle().ok()?;
        let RawDisplayHandle::Xlib(h) = handle.as_raw() else {
            return None;
        };
        let display = h.display?.as_ptr();
        let xlib = match x11_dl::xlib::Xlib::open() {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load libX11 for XPending; X11 events may be delayed");
                return None;
            }
        };
        Some(XPending { xlib, display })
    }

    /// Whether Xlib holds events winit has not processed yet.
    pub(crate) fn pending(&self) -> bool {
        // SAFETY: `display` is winit's live Display, used on its own thread
        // between pumps; XPending only reads and flushes the queue.
        unsafe { (self.xlib.XPending)(self.display.cast()) > 0 }
    }
}
