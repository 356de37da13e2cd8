//! Panics at callback boundaries.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs a user callback; a panic is caught, logged with `tracing` (naming
/// `what`), and turned into `None`, so that it ends only what it belongs to:
/// a connection, a timer, a request. The reactor does this around every
/// protocol callback; a battery does it where it calls user code of its
/// own (a resource, a remote method). Needs `panic = "unwind"`, the
/// default.
///
/// ```
/// let r = braid::catch_panic("an example", || -> u32 { panic!("boom") });
/// assert_eq!(r, None);
/// assert_eq!(braid::catch_panic("an example", || 7), Some(7));
/// ```
pub fn catch_panic<R>(what: &'static str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            tracing::error!(callback = what, panic = %panic_message(&*payload), "callback panicked");
            None
        }
    }
}

/// The text of a panic's payload (what `panic!` was given), for logs and
/// errors.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("at {}", 3)).unwrap_err();
/// assert_eq!(braid::panic_message(&*payload), "at 3");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
