//! Feature modules, one file per spec. Each declares its protocols, disco
//! features and IQ routes; `server/modules.rs` lists them in order.

pub mod disco;
pub mod kernel;
pub mod ping;
pub mod register;
pub mod session;
pub mod vcard;
pub mod version;
