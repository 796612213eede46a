//! Roost protocol vocabulary: namespaces, element helpers, stanza and stream
//! errors (RFC 6120 §4.9, §8.3). Pure data, no I/O.

pub mod data_form;
pub mod datetime;
pub mod element;
pub mod id;
pub mod ns;
pub mod presence;
pub mod retraction;
pub mod serialize;
pub mod stanza;
pub mod stanza_error;
pub mod stream_error;
pub mod vcard_photo;

pub use element::{Elem, ElementExt};
pub use jid::{BareJid, FullJid, Jid};
pub use minidom::Element;
pub use stanza::{Stanza, StanzaKind};
pub use stanza_error::{Condition, ErrorType, StanzaError};
pub use stream_error::StreamError;
