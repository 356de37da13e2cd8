//! Descriptor types in the public API, on every platform.
//!
//! On Unix these are `std::os::fd`'s own types. On Windows, where a
//! connection cannot carry descriptors, they are uninhabited stand-ins: the
//! methods that pass descriptors keep their signatures everywhere, no value
//! can be made to call them with, and a protocol's
//! `file_descriptor_received` is never called.

#[cfg(unix)]
pub use std::os::fd::{BorrowedFd, OwnedFd};

#[cfg(not(unix))]
mod stand_in {
    use std::convert::Infallible;
    use std::marker::PhantomData;

    /// A descriptor received over a connection. Uninhabited: connections on
    /// this platform pass none.
    #[derive(Debug)]
    pub struct OwnedFd(Infallible);

    /// A descriptor to send over a connection. Uninhabited: connections on
    /// this platform pass none.
    #[derive(Debug, Clone, Copy)]
    pub struct BorrowedFd<'a>(Infallible, PhantomData<&'a ()>);

    // As std's OwnedFd closes on drop (nothing to close: there is none).
    impl Drop for OwnedFd {
        fn drop(&mut self) {
            match self.0 {}
        }
    }

    impl OwnedFd {
        /// Borrows the descriptor (never called: there is none).
        pub fn as_fd(&self) -> BorrowedFd<'_> {
            match self.0 {}
        }
    }

    impl BorrowedFd<'_> {
        /// Duplicates the descriptor (never called: there is none).
        ///
        /// # Errors
        ///
        /// None can happen.
        pub fn try_clone_to_owned(&self) -> std::io::Result<OwnedFd> {
            match self.0 {}
        }
    }
}
#[cfg(not(unix))]
pub use stand_in::{BorrowedFd, OwnedFd};
