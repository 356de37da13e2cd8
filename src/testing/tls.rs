//! A fixed test PKI for TLS tests: a CA, a server certificate for
//! `localhost`, `127.0.0.1` and `::1`, and a client certificate, all valid
//! until 2126. The private keys are public: never trust this CA outside
//! tests.
//!
//! ```
//! use braid::testing::tls;
//! let server = tls::server_config();
//! let client = tls::client_config();
//! # let _ = (server, client);
//! ```

use crate::tls::{ClientConfig, ServerConfig};

/// The test CA's certificate (PEM).
pub const CA_PEM: &str = include_str!("certs/ca.pem");
/// The server certificate (PEM), issued by [`CA_PEM`] for `localhost`,
/// `127.0.0.1` and `::1`.
pub const SERVER_PEM: &str = include_str!("certs/server.pem");
/// The server certificate's private key (PEM, PKCS#8).
pub const SERVER_KEY: &str = include_str!("certs/server.key");
/// A client certificate (PEM) issued by [`CA_PEM`].
pub const CLIENT_PEM: &str = include_str!("certs/client.pem");
/// The client certificate's private key (PEM, PKCS#8).
pub const CLIENT_KEY: &str = include_str!("certs/client.key");

/// A server presenting [`SERVER_PEM`].
pub fn server_config() -> ServerConfig {
    ServerConfig::from_pem(SERVER_PEM.as_bytes(), SERVER_KEY.as_bytes())
        .expect("the test certificate and key")
}

/// A client trusting only [`CA_PEM`].
pub fn client_config() -> ClientConfig {
    ClientConfig::with_root_pem(CA_PEM.as_bytes()).expect("the test CA")
}
