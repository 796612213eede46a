//! XML namespaces of XEP-0045 and of the XEPs the rooms speak (XEP-0410,
//! XEP-0421, XEP-0249), beside the server-wide ones of `roost_proto::ns`.

pub use roost_proto::ns::*;

pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const MUC_ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
pub const MUC_ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";
pub const MUC_REGISTER: &str = "http://jabber.org/protocol/muc#register";
pub const MUC_REQUEST: &str = "http://jabber.org/protocol/muc#request";
pub const MUC_STABLE_ID: &str = "http://jabber.org/protocol/muc#stable_id";
/// XEP-0410 §4: the room answers self-pings itself.
pub const MUC_SELF_PING: &str = "http://jabber.org/protocol/muc#self-ping-optimization";
