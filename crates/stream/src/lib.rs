//! Bytes <-> XMPP stream events (RFC 6120 §4): an incremental reader built
//! on rxml that enforces the stanza size and depth limits while parsing,
//! and the writer side that frames stream headers, features and errors;
//! `websocket` frames the same events one element per message (RFC 7395).

pub mod reader;
pub mod websocket;
pub mod writer;

pub use reader::{Limits, StreamEvent, StreamHeader, XmlReader};
