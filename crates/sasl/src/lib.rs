//! SASL mechanisms of the server side (RFC 4422): SCRAM-SHA-1 and
//! SCRAM-SHA-256 (RFC 5802, RFC 7677), PLAIN (RFC 4616) and the HT-*
//! hashed-token mechanisms of XEP-0484 FAST. Pure: no I/O.

pub mod client;
pub mod credentials;
mod crypto;
pub mod error;
pub mod ht;
pub mod plain;
pub mod scram;

pub use client::{SaltedPassword, ScramClient};
pub use credentials::{
    derive, derive_with_salt, Hash, ScramKeys, StoredCredentials, DEFAULT_ITERATIONS,
};
pub use error::SaslError;
pub use plain::{parse_plain, verify_password, Plain};
pub use scram::{ClientFirst, ScramServer};
