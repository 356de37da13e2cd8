//! The `braid mail` subcommand.
