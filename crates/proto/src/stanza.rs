//! The stanza envelope (RFC 6120 §8): kind, addresses, type and id, read
//! once from the element so that routing never re-parses attributes.

use std::any::Any;
use std::sync::Arc;

use crate::ns;
use jid::Jid;
use minidom::Element;

/// XEP-0198: what a session hands along with a stanza it read, so that it
/// acknowledges the stanza only once its effects are safe. Whoever still
/// has to make an effect durable (an archive row, offline storage, a write
/// to the recipient's connection) keeps a clone; the stanza counts as
/// handled when the last clone is dropped. Opaque here: the session owns
/// what happens on drop.
pub type Receipt = Arc<dyn Any + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
}

/// A stanza whose addresses have been parsed and validated.
#[derive(Debug, Clone)]
pub struct Stanza {
    pub kind: StanzaKind,
    pub from: Option<Jid>,
    pub to: Option<Jid>,
    pub el: Element,
    /// Present while a client's stream management waits for this stanza.
    pub receipt: Option<Receipt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not message, presence or iq in the content namespace.
    UnsupportedStanzaType,
    /// `to` or `from` is not a valid JID.
    JidMalformed,
}

impl Stanza {
    pub fn parse(el: Element) -> Result<Stanza, EnvelopeError> {
        if el.ns() != ns::CLIENT && el.ns() != ns::SERVER {
            return Err(EnvelopeError::UnsupportedStanzaType);
        }
        let kind = match el.name() {
            "message" => StanzaKind::Message,
            "presence" => StanzaKind::Presence,
            "iq" => StanzaKind::Iq,
            _ => return Err(EnvelopeError::UnsupportedStanzaType),
        };
        let parse_jid = |name: &str| -> Result<Option<Jid>, EnvelopeError> {
            match el.attr(name) {
                None => Ok(None),
                Some(s) => Jid::new(s)
                    .map(Some)
                    .map_err(|_| EnvelopeError::JidMalformed),
            }
        };
        let to = parse_jid("to")?;
        let from = parse_jid("from")?;
        Ok(Stanza {
            kind,
            from,
            to,
            el,
            receipt: None,
        })
    }

    pub fn type_attr(&self) -> Option<&str> {
        self.el.attr("type")
    }

    pub fn id(&self) -> Option<&str> {
        self.el.attr("id")
    }

    pub fn is_error(&self) -> bool {
        self.type_attr() == Some("error")
    }

    /// IQ requests are `get` and `set`; results and errors are responses.
    pub fn is_iq_request(&self) -> bool {
        self.kind == StanzaKind::Iq && matches!(self.type_attr(), Some("get") | Some("set"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::parse;

    #[test]
    fn parses_addresses_and_kind() {
        let s = Stanza::parse(
            parse("<message xmlns='jabber:client' to='Juliet@Example.com/balcony'/>").unwrap(),
        )
        .unwrap();
        assert_eq!(s.kind, StanzaKind::Message);
        assert_eq!(s.to.unwrap().as_str(), "juliet@example.com/balcony");
    }

    #[test]
    fn rejects_malformed_jid_and_unknown_elements() {
        let bad = parse("<message xmlns='jabber:client' to='a@b@c'/>").unwrap();
        assert_eq!(Stanza::parse(bad).unwrap_err(), EnvelopeError::JidMalformed);
        let other = parse("<foo xmlns='jabber:client'/>").unwrap();
        assert_eq!(
            Stanza::parse(other).unwrap_err(),
            EnvelopeError::UnsupportedStanzaType
        );
    }
}
