//! XEP-0357 Push Notifications, the user's server side: a session
//! registers its device with an app server (`<enable jid node>`, with
//! publish-options passed through), and when something that would notify
//! a person reaches the account while that device cannot hear it, the
//! account publishes a `urn:xmpp:push:summary` form to the app server.
//!
//! Who cannot hear: a device whose session is gone or hibernated (XEP-0198,
//! waiting for resumption); for call proposals (XEP-0353) also one that
//! said it is inactive (XEP-0352). What notifies: chat messages with a body
//! or an encrypted payload (OMEMO, OpenPGP), call proposals, and, through
//! account-based MUC joining, groupchat messages that mention the account
//! and private messages from room occupants (`rooms/` decides, with each
//! room's policy). Receipts, chat states, headlines and carbons never do.
//!
//! Registrations are stored in the account's private store; error counts,
//! message counts and throttling live in the account task only. A push is
//! sent after the message is delivered and never waits for anything.

use std::collections::HashMap;
use std::sync::Mutex;

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{ns, Condition, Elem, ElementExt, Stanza, StanzaError, StanzaKind};
use tokio::time::Instant;

use super::resources::DeviceState;
use super::{Account, SessionMsg};

pub const NS: &str = "urn:xmpp:push:0";
const SUMMARY: &str = "urn:xmpp:push:summary";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
const JINGLE_MESSAGE: &str = "urn:xmpp:jingle-message:0";
const KEY: &str = "push-registrations";
/// Our push IQs' ids start with this, so their answers are recognised.
const ID_PREFIX: &str = "push-";
/// Characters of a body put in a push at most (`include_body`).
const MAX_BODY: usize = 256;
/// Answers awaited at most; older ones are forgotten.
const MAX_PENDING: usize = 100_000;

/// How much a stanza matters to a person whose phone sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Urgency {
    None,
    Message,
    /// A Jingle call proposal: also for devices that are merely inactive.
    Call,
}

/// XEP-0357 §7 leaves the choice to the server; these are what a phone
/// user would want to be woken for.
pub(super) fn urgency(msg: &Element) -> Urgency {
    if msg.has_child("propose", JINGLE_MESSAGE) {
        return Urgency::Call;
    }
    let carbon = msg.has_child("sent", ns::CARBONS) || msg.has_child("received", ns::CARBONS);
    let encrypted = msg.has_child("encrypted", "eu.siacs.conversations.axolotl")
        || msg.has_child("encrypted", "urn:xmpp:omemo:2")
        || msg.has_child("openpgp", "urn:xmpp:openpgp:0")
        || msg.has_child("x", "jabber:x:encrypted");
    if !carbon && (msg.has_child("body", ns::CLIENT) || encrypted) {
        Urgency::Message
    } else {
        Urgency::None
    }
}

/// When a room's messages push (per room, with its bookmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomPolicy {
    Always,
    /// Messages that mention the account, and private messages.
    #[default]
    Mentions,
    /// Nothing from the room.
    Never,
}

/// Our own bookmark extension: `<push xmlns='urn:roost:push:0'
/// notify='always|mentions|never'/>`.
pub const ROOM_POLICY_NS: &str = "urn:roost:push:0";
/// XEP-0492 chat notification settings.
const NOTIFICATION_SETTINGS: &str = "urn:xmpp:notification-settings:1";

/// The policy a bookmark's XEP-0402 extensions set: our own element
/// first; else XEP-0492's `<notify/>`, the setting meant for phones
/// (identity client/phone), then for clients, then the fallback element.
pub fn room_policy(extensions: &[Element]) -> Option<RoomPolicy> {
    let own = extensions
        .iter()
        .find(|e| e.is("push", ROOM_POLICY_NS))
        .and_then(|e| match e.attr("notify")? {
            "always" => Some(RoomPolicy::Always),
            "mentions" => Some(RoomPolicy::Mentions),
            "never" => Some(RoomPolicy::Never),
            _ => None,
        });
    if own.is_some() {
        return own;
    }
    let notify = extensions
        .iter()
        .find(|e| e.is("notify", NOTIFICATION_SETTINGS))?;
    let setting = |e: &Element| match e.name() {
        "always" => Some(RoomPolicy::Always),
        "on-mention" => Some(RoomPolicy::Mentions),
        "never" => Some(RoomPolicy::Never),
        _ => None,
    };
    let pick = |category: Option<&str>, kind: Option<&str>| {
        notify
            .children()
            .find(|c| {
                c.attr("identity-category") == category
                    && c.attr("identity-type") == kind
                    && setting(c).is_some()
            })
            .and_then(setting)
    };
    pick(Some("client"), Some("phone"))
        .or_else(|| pick(Some("client"), None))
        .or_else(|| pick(None, None))
}

/// A groupchat message that mentions `nick` (its text, case-insensitive)
/// or, with an XEP-0372 reference, the occupant or the account.
pub(super) fn mentions(msg: &Element, nick: &str, occupant: &str, account: &str) -> bool {
    let referenced = msg
        .children()
        .filter(|c| c.is("reference", "urn:xmpp:reference:0"))
        .filter(|c| c.attr("type") == Some("mention"))
        .filter_map(|c| c.attr("uri")?.strip_prefix("xmpp:"))
        .any(|uri| uri == occupant || uri == account);
    if referenced {
        return true;
    }
    if nick.is_empty() {
        return false;
    }
    msg.get_child("body", ns::CLIENT)
        .is_some_and(|b| b.text().to_lowercase().contains(&nick.to_lowercase()))
}

/// One device's registration with an app server.
struct Registration {
    app: Jid,
    node: String,
    /// The publish-options form the client gave, passed through.
    options: Option<Element>,
    /// The resource of the session that registered: the device.
    device: String,
}

#[derive(Default)]
pub(super) struct Registrations {
    list: Vec<Registration>,
}

/// A registration, server-wide: (account, app server, node).
type Key = (BareJid, String, String);

fn key(account: &BareJid, r: &Registration) -> Key {
    (account.clone(), r.app.to_string(), r.node.clone())
}

struct Counters {
    app: String,
    node: String,
    device: String,
    /// Notifying stanzas since the device last heard.
    count: u32,
    /// App server errors in a row.
    errors: u32,
    last_push: Option<Instant>,
}

/// What outlives an account task: the app servers' answers arrive, and
/// the next message comes, when the account has no session and its task
/// may have ended and started again. Entries only for registrations that
/// pushed since their device last heard, and for unanswered pushes.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Default)]
struct LedgerInner {
    /// Per account: a handful of registrations at most.
    counters: HashMap<BareJid, Vec<Counters>>,
    /// Push IQ id -> its registration, until answered.
    pending: HashMap<String, Key>,
}

impl LedgerInner {
    fn entry(&mut self, (account, app, node): &Key, device: &str) -> &mut Counters {
        let list = self.counters.entry(account.clone()).or_default();
        let i = match list.iter().position(|c| c.app == *app && c.node == *node) {
            Some(i) => i,
            None => {
                list.push(Counters {
                    app: app.clone(),
                    node: node.clone(),
                    device: device.to_string(),
                    count: 0,
                    errors: 0,
                    last_push: None,
                });
                list.len() - 1
            }
        };
        &mut list[i]
    }
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one more stanza for the registration; the count to push, or
    /// `None` while throttled.
    fn count(&self, key: &Key, device: &str, min_interval: u64, urgent: bool) -> Option<u32> {
        let mut inner = self.lock();
        let c = inner.entry(key, device);
        c.count = c.count.saturating_add(1);
        let now = Instant::now();
        let throttled = !urgent
            && c.last_push
                .is_some_and(|t| now.duration_since(t).as_secs() < min_interval);
        if throttled {
            return None;
        }
        c.last_push = Some(now);
        Some(c.count)
    }

    fn sent(&self, id: String, key: Key) {
        let mut inner = self.lock();
        if inner.pending.len() >= MAX_PENDING {
            // App servers that never answer: forget the oldest guesses.
            inner.pending.clear();
        }
        inner.pending.insert(id, key);
    }

    /// An answer to push `id`: the registration and its errors in a row.
    fn answered(&self, id: &str, failed: bool) -> Option<(Key, u32)> {
        let mut inner = self.lock();
        let key = inner.pending.remove(id)?;
        let list = inner.counters.get_mut(&key.0)?;
        let c = list
            .iter_mut()
            .find(|c| c.app == key.1 && c.node == key.2)?;
        c.errors = if failed { c.errors + 1 } else { 0 };
        let errors = c.errors;
        Some((key, errors))
    }

    /// The device is back: its counts start over (errors stay).
    pub(super) fn device_heard(&self, account: &BareJid, device: &str) {
        let mut inner = self.lock();
        let Some(list) = inner.counters.get_mut(account) else {
            return;
        };
        for c in list.iter_mut().filter(|c| c.device == device) {
            c.count = 0;
            c.last_push = None;
        }
        list.retain(|c| c.count > 0 || c.errors > 0);
        if list.is_empty() {
            inner.counters.remove(account);
        }
    }

    fn forget(&self, (account, app, node): &Key) {
        let mut inner = self.lock();
        if let Some(list) = inner.counters.get_mut(account) {
            list.retain(|c| !(c.app == *app && c.node == *node));
            if list.is_empty() {
                inner.counters.remove(account);
            }
        }
    }
}

impl Registrations {
    fn parse(xml: &str) -> Registrations {
        let Ok(root) = xml.parse::<Element>() else {
            return Registrations::default();
        };
        let list = root
            .children()
            .filter(|c| c.is("enable", NS))
            .filter_map(|e| {
                Some(Registration {
                    app: Jid::new(e.attr("jid")?).ok()?,
                    node: e.attr("node")?.to_string(),
                    options: e.get_child("x", ns::DATA_FORMS).cloned(),
                    device: e.attr("device").unwrap_or_default().to_string(),
                })
            })
            .collect();
        Registrations { list }
    }

    fn to_xml(&self) -> String {
        Element::bare("registrations", NS)
            .children_from(self.list.iter().map(|r| {
                let mut e = Element::bare("enable", NS)
                    .attr_set("jid", r.app.as_str())
                    .attr_set("node", r.node.as_str())
                    .attr_set("device", r.device.as_str());
                if let Some(o) = &r.options {
                    e.append_child(o.clone());
                }
                e
            }))
            .to_xml()
    }

    fn has_device(&self, device: &str) -> bool {
        self.list.iter().any(|r| r.device == device)
    }
}

impl Account {
    async fn push_registrations(&mut self) -> &mut Registrations {
        if self.push.is_none() {
            let loaded = match self.server.stores.private.get_private(&self.jid, KEY).await {
                Ok(Some(xml)) => Registrations::parse(&xml),
                Ok(None) => Registrations::default(),
                Err(e) => {
                    tracing::error!(account = %self.jid, error = %e, "push registrations unreadable");
                    Registrations::default()
                }
            };
            self.push = Some(Box::new(loaded));
        }
        self.push.get_or_insert_with(Default::default)
    }

    pub(super) async fn has_push_registrations(&mut self) -> bool {
        self.server.config.push.enabled && !self.push_registrations().await.list.is_empty()
    }

    async fn save_push(&mut self) -> Result<(), StanzaError> {
        let xml = self.push_registrations().await.to_xml();
        self.server
            .stores
            .private
            .set_private(&self.jid, KEY, Some(&xml))
            .await
            .map_err(|e| {
                tracing::error!(account = %self.jid, error = %e, "push registrations not saved");
                StanzaError::internal()
            })
    }

    /// `<enable/>` and `<disable/>` (XEP-0357 §5, §6) from one session.
    pub(super) async fn push_iq(
        &mut self,
        resource: &str,
        iq: &Stanza,
    ) -> Result<Option<Element>, StanzaError> {
        if !self.server.config.push.enabled {
            return Err(StanzaError::service_unavailable());
        }
        if iq.type_attr() != Some("set") {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        let bad = |text: &str| StanzaError::new(Condition::BadRequest).with_text(text);
        if let Some(enable) = iq.el.get_child("enable", NS) {
            let app = enable
                .attr("jid")
                .and_then(|j| Jid::new(j).ok())
                .ok_or_else(|| bad("enable needs the app server's jid"))?;
            let node = enable
                .attr("node")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("enable needs a node"))?
                .to_string();
            let options = enable
                .get_child("x", ns::DATA_FORMS)
                .filter(|x| form_type(x) == Some(PUBLISH_OPTIONS))
                .cloned();
            let max = self.server.config.push.max_registrations.max(1);
            let regs = self.push_registrations().await;
            regs.list.retain(|r| !(r.app == app && r.node == node));
            let fresh = Registration {
                app,
                node,
                options,
                device: resource.to_string(),
            };
            self.server.push_ledger.forget(&key(&self.jid, &fresh));
            let regs = self.push_registrations().await;
            regs.list.push(fresh);
            while regs.list.len() > max {
                regs.list.remove(0);
            }
            self.save_push().await?;
            self.tell_device(resource, true);
            return Ok(None);
        }
        if let Some(disable) = iq.el.get_child("disable", NS) {
            let app = disable
                .attr("jid")
                .and_then(|j| Jid::new(j).ok())
                .ok_or_else(|| bad("disable needs the app server's jid"))?;
            let node = disable.attr("node").map(str::to_string);
            let regs = self.push_registrations().await;
            let devices: Vec<String> = regs.list.iter().map(|r| r.device.clone()).collect();
            regs.list
                .retain(|r| !(r.app == app && node.as_ref().is_none_or(|n| *n == r.node)));
            let gone: Vec<String> = devices
                .into_iter()
                .filter(|d| !regs.has_device(d))
                .collect();
            self.save_push().await?;
            for d in gone {
                self.tell_device(&d, false);
            }
            return Ok(None);
        }
        Err(StanzaError::new(Condition::FeatureNotImplemented))
    }

    /// Revoke the registrations named `"app node"`; what is left, as
    /// (app server, node, device).
    pub(super) async fn push_registrations_revoking(
        &mut self,
        revoke: &[String],
    ) -> Vec<(String, String, String)> {
        let regs = self.push_registrations().await;
        let devices: Vec<String> = regs.list.iter().map(|r| r.device.clone()).collect();
        let before = regs.list.len();
        regs.list
            .retain(|r| !revoke.contains(&format!("{} {}", r.app, r.node)));
        let changed = regs.list.len() != before;
        let left: Vec<(String, String, String)> = regs
            .list
            .iter()
            .map(|r| (r.app.to_string(), r.node.clone(), r.device.clone()))
            .collect();
        let gone: Vec<String> = devices
            .into_iter()
            .filter(|d| !left.iter().any(|(_, _, dev)| dev == d))
            .collect();
        if changed {
            let _ = self.save_push().await;
            for d in gone {
                self.tell_device(&d, false);
            }
        }
        left
    }

    fn tell_device(&self, device: &str, registered: bool) {
        if let Some(e) = self.resources.get(device) {
            e.handle.queue(SessionMsg::PushRegistered(registered));
        }
    }

    /// A session's device started or stopped hearing; one that hears again
    /// starts counting from zero.
    pub(super) fn device_state(&mut self, resource: &str, session_id: u64, state: DeviceState) {
        let Some(entry) = self.resources.get_mut(resource) else {
            return;
        };
        if entry.handle.id != session_id {
            return;
        }
        entry.device = state;
        if state == DeviceState::Live {
            self.device_hears_again(resource);
        }
    }

    pub(super) fn device_hears_again(&mut self, device: &str) {
        self.server.push_ledger.device_heard(&self.jid, device);
    }

    fn device_hears(&self, device: &str, urgency: Urgency) -> bool {
        match self.resources.get(device).map(|e| e.device) {
            None | Some(DeviceState::Hibernated) => false,
            Some(DeviceState::Inactive) => urgency != Urgency::Call,
            Some(DeviceState::Live) => true,
        }
    }

    /// Push `msg` (from `sender`) to every registered device that cannot
    /// hear it. Nothing here waits for the app servers.
    pub(super) async fn push_unheard(&mut self, msg: &Element, sender: &Jid, urgency: Urgency) {
        if urgency == Urgency::None || !self.has_push_registrations().await {
            return;
        }
        let cfg = &self.server.config.push;
        let body = msg
            .get_child("body", ns::CLIENT)
            .filter(|_| cfg.include_body)
            .map(|b| b.text().chars().take(MAX_BODY).collect::<String>());
        let mut out = Vec::new();
        let regs = self
            .push
            .as_deref()
            .map(|r| &r.list[..])
            .unwrap_or_default();
        for r in regs {
            if self.device_hears(&r.device, urgency) {
                continue;
            }
            let k = key(&self.jid, r);
            let ledger = &self.server.push_ledger;
            let Some(count) =
                ledger.count(&k, &r.device, cfg.min_interval, urgency == Urgency::Call)
            else {
                continue;
            };
            let mut fields = vec![("message-count", count.to_string())];
            if cfg.include_sender {
                fields.push(("last-message-sender", sender.to_string()));
            }
            if let Some(b) = &body {
                fields.push(("last-message-body", b.clone()));
            }
            let id = format!("{ID_PREFIX}{}", roost_proto::id::random_token(12));
            out.push(publish(&self.jid, r, &id, &fields));
            ledger.sent(id, k);
        }
        for iq in out {
            self.server.route_element(iq);
        }
    }

    /// An app server's answer to one of our pushes; `true` when it was one.
    /// Errors count against the registration, which is dropped after
    /// `max_errors` in a row; a result clears the count.
    pub(super) async fn push_answer(&mut self, stanza: &Stanza) -> bool {
        if stanza.kind != StanzaKind::Iq || stanza.is_iq_request() {
            return false;
        }
        let Some(id) = stanza.el.attr("id").filter(|i| i.starts_with(ID_PREFIX)) else {
            return false;
        };
        let failed = stanza.type_attr() == Some("error");
        let Some(((_, app, node), errors)) = self.server.push_ledger.answered(id, failed) else {
            return true;
        };
        if errors < self.server.config.push.max_errors.max(1) {
            return true;
        }
        let regs = self.push_registrations().await;
        let Some(i) = regs
            .list
            .iter()
            .position(|r| r.app.as_str() == app && r.node == node)
        else {
            return true;
        };
        let gone = regs.list.remove(i);
        let device_left = !regs.has_device(&gone.device);
        tracing::info!(account = %self.jid, app = %gone.app, node = %gone.node, "push registration dropped after repeated errors");
        self.server.push_ledger.forget(&key(&self.jid, &gone));
        let _ = self.save_push().await;
        if device_left {
            self.tell_device(&gone.device, false);
        }
        true
    }
}

fn form_type(x: &Element) -> Option<&str> {
    x.children()
        .find(|f| f.attr("var") == Some("FORM_TYPE"))
        .and_then(|f| f.get_child("value", ns::DATA_FORMS))
        .map(|v| v.text())
        .and_then(|t| match t.as_str() {
            PUBLISH_OPTIONS => Some(PUBLISH_OPTIONS),
            _ => None,
        })
}

/// The push: a pubsub publish of a summary form to the registration's
/// node, with the client's publish-options (XEP-0357 §7).
fn publish(
    account: &jid::BareJid,
    r: &Registration,
    id: &str,
    fields: &[(&str, String)],
) -> Element {
    let field = |var: &str, value: &str| {
        Element::bare("field", ns::DATA_FORMS)
            .attr_set("var", var)
            .child(Element::bare("value", ns::DATA_FORMS).text_node(value))
    };
    let form = Element::bare("x", ns::DATA_FORMS)
        .attr_set("type", "submit")
        .child(field("FORM_TYPE", SUMMARY).attr_set("type", "hidden"))
        .children_from(fields.iter().map(|(var, value)| field(var, value)));
    let mut pubsub = Element::bare("pubsub", PUBSUB).child(
        Element::bare("publish", PUBSUB)
            .attr_set("node", r.node.as_str())
            .child(
                Element::bare("item", PUBSUB).child(Element::bare("notification", NS).child(form)),
            ),
    );
    if let Some(options) = &r.options {
        pubsub.append_child(Element::bare("publish-options", PUBSUB).child(options.clone()));
    }
    Element::bare("iq", ns::CLIENT)
        .attr_set("type", "set")
        .attr_set("id", id)
        .attr_set("from", account.as_str())
        .attr_set("to", r.app.as_str())
        .child(pubsub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn what_notifies_a_person() {
        let u = |x: &str| urgency(&msg(x));
        assert_eq!(
            u("<message xmlns='jabber:client'><body>hi</body></message>"),
            Urgency::Message
        );
        assert_eq!(
            u("<message xmlns='jabber:client'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>"),
            Urgency::Message
        );
        assert_eq!(
            u("<message xmlns='jabber:client'><propose xmlns='urn:xmpp:jingle-message:0' id='c1'/></message>"),
            Urgency::Call
        );
        for quiet in [
            "<message xmlns='jabber:client'><received xmlns='urn:xmpp:receipts' id='x'/></message>",
            "<message xmlns='jabber:client'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'/><body>x</body></message>",
        ] {
            assert_eq!(u(quiet), Urgency::None, "{quiet}");
        }
    }

    #[test]
    fn a_room_policy_comes_from_our_element_or_xep_0492() {
        let ext = |x: &str| vec![msg(x)];
        assert_eq!(room_policy(&[]), None);
        assert_eq!(
            room_policy(&ext("<push xmlns='urn:roost:push:0' notify='always'/>")),
            Some(RoomPolicy::Always)
        );
        assert_eq!(
            room_policy(&ext(
                "<notify xmlns='urn:xmpp:notification-settings:1'><never/></notify>"
            )),
            Some(RoomPolicy::Never)
        );
        let specific = "<notify xmlns='urn:xmpp:notification-settings:1'><on-mention/>\
            <always identity-category='client' identity-type='phone'/></notify>";
        assert_eq!(room_policy(&ext(specific)), Some(RoomPolicy::Always));
        let both = vec![
            msg("<notify xmlns='urn:xmpp:notification-settings:1'><always/></notify>"),
            msg("<push xmlns='urn:roost:push:0' notify='never'/>"),
        ];
        assert_eq!(room_policy(&both), Some(RoomPolicy::Never));
    }

    #[test]
    fn mentions_by_name_or_reference() {
        let m = |x: &str| mentions(&msg(x), "Al", "room@muc.example/Al", "alice@example");
        assert!(m(
            "<message xmlns='jabber:client'><body>hey al, look</body></message>"
        ));
        assert!(!m(
            "<message xmlns='jabber:client'><body>hello there</body></message>"
        ));
        assert!(m("<message xmlns='jabber:client'><body>look</body><reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:alice@example'/></message>"));
    }

    #[test]
    fn registrations_survive_a_round_trip_through_the_store() {
        let mut regs = Registrations::default();
        regs.list.push(Registration {
            app: Jid::new("push.example.org").unwrap(),
            node: "n1".into(),
            options: Some(msg("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s</value></field></x>")),
            device: "phone".into(),
        });
        let back = Registrations::parse(&regs.to_xml());
        assert_eq!(back.list.len(), 1);
        let r = &back.list[0];
        assert_eq!(
            (r.app.as_str(), r.node.as_str(), r.device.as_str()),
            ("push.example.org", "n1", "phone")
        );
        assert_eq!(
            r.options.as_ref().map(form_type),
            Some(Some(PUBLISH_OPTIONS))
        );
    }
}
