//! Feature modules, one file per spec. Each declares its protocols, disco
//! features and IQ routes; `server/modules.rs` lists them in order.

pub mod adhoc;
pub mod avatar;
pub mod bookmarks;
pub mod contact_info;
pub mod disco;
pub mod extdisco;
pub mod kernel;
pub mod last_activity;
pub mod motd;
pub mod pep;
pub mod ping;
pub mod private_xml;
pub mod register;
pub mod session;
pub mod time;
pub mod vcard;
pub mod version;
