//! Placeholder for the calloop host-loop adapter of braid.
//!
//! The adapter itself is the host-loop issue's work: it will implement
//! [`braid::HostLoop`] for calloop's loop. This crate exists now so the
//! workspace layout is fixed and every member builds from the start.
#![warn(missing_docs)]

pub use braid::HostLoop;
