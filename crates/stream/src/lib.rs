//! Bytes <-> XMPP stream events (RFC 6120 §4): an incremental reader built
//! on rxml that enforces the stanza size and depth limits while parsing,
//! and the writer side that frames stream headers, features and errors.

pub mod reader;
pub mod writer;

pub use reader::{Limits, StreamEvent, StreamHeader, XmlReader};
