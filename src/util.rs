//! Small helpers shared across the crate.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs a user callback; a panic is caught, logged with `tracing`, and
/// turned into `None`, so that it ends only what it belongs to (DESIGN fact
/// 7). Requires `panic = "unwind"`, the default.
pub(crate) fn guard<R>(what: &'static str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            tracing::error!(callback = what, panic = %panic_message(&*payload), "callback panicked");
            None
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
