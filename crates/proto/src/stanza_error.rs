//! Stanza errors (RFC 6120 §8.3): type, defined condition and optional text,
//! and the error reply built from the offending stanza.

use crate::element::{Elem, ElementExt};
use crate::ns;
use minidom::Element;

/// RFC 6120 §8.3.2: the error type tells the sender what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// RFC 6120 §8.3.3 defined conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        use Condition::*;
        match self {
            BadRequest => "bad-request",
            Conflict => "conflict",
            FeatureNotImplemented => "feature-not-implemented",
            Forbidden => "forbidden",
            Gone => "gone",
            InternalServerError => "internal-server-error",
            ItemNotFound => "item-not-found",
            JidMalformed => "jid-malformed",
            NotAcceptable => "not-acceptable",
            NotAllowed => "not-allowed",
            NotAuthorized => "not-authorized",
            PolicyViolation => "policy-violation",
            RecipientUnavailable => "recipient-unavailable",
            Redirect => "redirect",
            RegistrationRequired => "registration-required",
            RemoteServerNotFound => "remote-server-not-found",
            RemoteServerTimeout => "remote-server-timeout",
            ResourceConstraint => "resource-constraint",
            ServiceUnavailable => "service-unavailable",
            SubscriptionRequired => "subscription-required",
            UndefinedCondition => "undefined-condition",
            UnexpectedRequest => "unexpected-request",
        }
    }

    /// The type RFC 6120 §8.3.3 suggests for each condition.
    pub fn default_type(self) -> ErrorType {
        use Condition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation | Redirect => {
                ErrorType::Modify
            }
            Forbidden | NotAuthorized | RegistrationRequired | SubscriptionRequired => {
                ErrorType::Auth
            }
            InternalServerError | RecipientUnavailable | RemoteServerTimeout
            | ResourceConstraint | UnexpectedRequest => ErrorType::Wait,
            _ => ErrorType::Cancel,
        }
    }

    pub fn parse(s: &str) -> Option<Condition> {
        use Condition::*;
        Some(match s {
            "bad-request" => BadRequest,
            "conflict" => Conflict,
            "feature-not-implemented" => FeatureNotImplemented,
            "forbidden" => Forbidden,
            "gone" => Gone,
            "internal-server-error" => InternalServerError,
            "item-not-found" => ItemNotFound,
            "jid-malformed" => JidMalformed,
            "not-acceptable" => NotAcceptable,
            "not-allowed" => NotAllowed,
            "not-authorized" => NotAuthorized,
            "policy-violation" => PolicyViolation,
            "recipient-unavailable" => RecipientUnavailable,
            "redirect" => Redirect,
            "registration-required" => RegistrationRequired,
            "remote-server-not-found" => RemoteServerNotFound,
            "remote-server-timeout" => RemoteServerTimeout,
            "resource-constraint" => ResourceConstraint,
            "service-unavailable" => ServiceUnavailable,
            "subscription-required" => SubscriptionRequired,
            "undefined-condition" => UndefinedCondition,
            "unexpected-request" => UnexpectedRequest,
            _ => return None,
        })
    }
}

/// A stanza error as handlers return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    pub kind: ErrorType,
    pub condition: Condition,
    pub text: Option<String>,
    /// Application-specific condition element (RFC 6120 §8.3.4); boxed so
    /// that the common error stays small.
    pub app: Option<Box<Element>>,
}

impl StanzaError {
    pub fn new(condition: Condition) -> Self {
        StanzaError {
            kind: condition.default_type(),
            condition,
            text: None,
            app: None,
        }
    }
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    pub fn with_app(mut self, app: Element) -> Self {
        self.app = Some(Box::new(app));
        self
    }
    pub fn bad_request(text: &str) -> Self {
        Self::new(Condition::BadRequest).with_text(text)
    }
    pub fn service_unavailable() -> Self {
        Self::new(Condition::ServiceUnavailable)
    }
    pub fn internal() -> Self {
        Self::new(Condition::InternalServerError)
    }

    /// The `<error/>` child element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::bare("error", ns::CLIENT)
            .attr_set("type", self.kind.as_str())
            .child(Element::bare(self.condition.as_str(), ns::STANZAS));
        if let Some(t) = &self.text {
            e = e.child(
                Element::bare("text", ns::STANZAS)
                    .attr_set("xml:lang", "en")
                    .text_node(t.clone()),
            );
        }
        if let Some(app) = &self.app {
            e = e.child((**app).clone());
        }
        e
    }

    /// Read the error out of an error stanza.
    pub fn from_stanza(stanza: &Element) -> Option<StanzaError> {
        let err = stanza.children().find(|c| c.name() == "error")?;
        let condition = err
            .children()
            .filter(|c| c.ns() == ns::STANZAS && c.name() != "text")
            .find_map(|c| Condition::parse(c.name()))
            .unwrap_or(Condition::UndefinedCondition);
        let kind = match err.attr("type") {
            Some("auth") => ErrorType::Auth,
            Some("continue") => ErrorType::Continue,
            Some("modify") => ErrorType::Modify,
            Some("wait") => ErrorType::Wait,
            _ => ErrorType::Cancel,
        };
        Some(StanzaError {
            kind,
            condition,
            text: err.child_text("text", ns::STANZAS),
            app: None,
        })
    }

    /// RFC 6120 §8.3.1: the error reply swaps `from` and `to`, keeps the id
    /// and the name, sets `type='error'`. Message and presence errors echo
    /// the original payload; IQ errors do not need to (and we avoid the echo
    /// so that a large request cannot be bounced back for free).
    pub fn reply_to(&self, stanza: &Element) -> Element {
        let mut reply = Element::bare(stanza.name(), ns::CLIENT);
        if let Some(id) = stanza.attr("id") {
            reply.set("id", id);
        }
        if let Some(from) = stanza.attr("from") {
            reply.set("to", from);
        }
        if let Some(to) = stanza.attr("to") {
            reply.set("from", to);
        }
        reply.set("type", "error");
        if stanza.name() != "iq" {
            for c in stanza.children() {
                if c.name() != "error" {
                    reply.append_child(c.clone());
                }
            }
        }
        reply.append_child(self.to_element());
        reply
    }
}

impl std::fmt::Display for StanzaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.condition.as_str())?;
        if let Some(t) = &self.text {
            write!(f, ": {t}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StanzaError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::parse;

    #[test]
    fn error_reply_swaps_addresses_and_keeps_id() {
        let iq = parse("<iq xmlns='jabber:client' id='x1' from='a@b/c' to='b' type='get'><q xmlns='urn:x'/></iq>").unwrap();
        let r = StanzaError::service_unavailable().reply_to(&iq);
        assert_eq!(r.attr("to"), Some("a@b/c"));
        assert_eq!(r.attr("from"), Some("b"));
        assert_eq!(r.attr("id"), Some("x1"));
        assert_eq!(r.attr("type"), Some("error"));
        let e = StanzaError::from_stanza(&r).unwrap();
        assert_eq!(e.condition, Condition::ServiceUnavailable);
        assert_eq!(e.kind, ErrorType::Cancel);
        assert!(r.get_child("q", "urn:x").is_none());
    }

    #[test]
    fn message_error_echoes_payload() {
        let m = parse("<message xmlns='jabber:client' to='x@y'><body>hi</body></message>").unwrap();
        let r = StanzaError::new(Condition::ItemNotFound)
            .with_text("no")
            .reply_to(&m);
        assert_eq!(
            r.get_child("body", ns::CLIENT).map(|b| b.text()),
            Some("hi".into())
        );
        let e = StanzaError::from_stanza(&r).unwrap();
        assert_eq!(e.text.as_deref(), Some("no"));
    }
}
