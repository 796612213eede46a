//! XML namespaces used across the server, named after their specs.

pub const CLIENT: &str = "jabber:client";
pub const SERVER: &str = "jabber:server";
pub const STREAM: &str = "http://etherx.jabber.org/streams";
pub const STREAMS_ERR: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const ROSTER: &str = "jabber:iq:roster";
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const PING: &str = "urn:xmpp:ping";
pub const VERSION: &str = "jabber:iq:version";
pub const VCARD: &str = "vcard-temp";
/// XEP-0153 avatar hashes in presence.
pub const VCARD_UPDATE: &str = "vcard-temp:x:update";
pub const REGISTER: &str = "jabber:iq:register";
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
pub const DELAY: &str = "urn:xmpp:delay";
pub const OFFLINE: &str = "msgoffline";
pub const DATA_FORMS: &str = "jabber:x:data";
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
pub const CARBONS: &str = "urn:xmpp:carbons:2";
pub const FORWARD: &str = "urn:xmpp:forward:0";
pub const HINTS: &str = "urn:xmpp:hints";
pub const BLOCKING: &str = "urn:xmpp:blocking";
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
pub const SID: &str = "urn:xmpp:sid:0";
/// XEP-0424 message retraction.
pub const RETRACT: &str = "urn:xmpp:message-retract:1";
/// XEP-0425 moderated message retraction.
pub const MODERATE: &str = "urn:xmpp:message-moderate:1";
/// XEP-0421 occupant ids.
pub const OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
pub const MAM: &str = "urn:xmpp:mam:2";
pub const RSM: &str = "http://jabber.org/protocol/rsm";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
pub const SM: &str = "urn:xmpp:sm:3";
pub const CSI: &str = "urn:xmpp:csi:0";
