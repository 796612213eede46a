//! One task per account (ARCHITECTURE.md "account"): it owns the account's
//! bound resources and their presence, caches its roster, and is the one
//! place where stanzas addressed to the account are delivered (RFC 6121 §8.5).
//! Roster, subscription and presence logic live here rather than in feature
//! modules because all three read and write the same per-account state and
//! must be serialised with each other.

mod archive;
pub mod avatar;
pub mod blocking;
mod carbons;
mod delivery;
pub mod disabled;
mod notify;
mod presence;
pub mod push;
mod resources;
mod rooms;
mod roster;
mod subscription;

pub use push::NS as PUSH_NS;
pub use resources::{session_queue, DeviceState, KillReason, SessionHandle, SessionMsg};
pub use rooms::FEATURE as ACCOUNT_MUC_FEATURE;
pub use rooms::MUC as MUC_NS;
pub use rooms::{BookmarkNicks, RoomBookmark};

use std::sync::Arc;

use jid::BareJid;
use minidom::Element;
use roost_proto::{Stanza, StanzaError};
use tokio::sync::oneshot;

use crate::mailbox::{self, TrySendError};
use crate::server::Server;
use resources::Resources;
use roster::RosterCache;

/// Messages an account task handles, in arrival order.
pub enum AccountMsg {
    /// A session finished negotiation and wants this resource.
    Bind {
        resource: String,
        handle: SessionHandle,
        /// What a Bind 2 request enables with the binding (XEP-0386).
        inline: Option<Box<BindInline>>,
        /// Answered once bound, with the rooms the session was joined to;
        /// `None`: refused, the account has `limits.max_resources` bound.
        reply: oneshot::Sender<Option<Vec<(String, String)>>>,
    },
    /// A session ended, however it ended.
    Unbind { resource: String, session_id: u64 },
    /// A stanza sent by one of the account's own sessions that the account
    /// must process: presence of any kind, and roster IQs.
    FromSession { resource: String, stanza: Stanza },
    /// A stanza addressed to the account's bare JID or one of its resources.
    Deliver(Stanza),
    /// Retry joining a bookmarked room the account was disconnected from.
    RejoinBookmarked(BareJid),
    /// Answered once everything queued before it was handled (shutdown).
    Flush(oneshot::Sender<()>),
    /// The account's bookmarked rooms, whole (rule 13).
    Bookmarks(Vec<RoomBookmark>),
    /// Close every session of the account (an administrator ended them,
    /// or removed the account); answered with how many there were.
    EndSessions {
        reason: roost_proto::StreamError,
        text: String,
        reply: oneshot::Sender<usize>,
    },
    /// The account's push registrations (app server, node, device), after
    /// revoking those named (`"app node"`); for the user's own command.
    PushRegistrations {
        revoke: Vec<String>,
        reply: oneshot::Sender<Vec<(String, String, String)>>,
    },
    /// Whether the account has a session now (XEP-0012 §3: then its last
    /// activity is zero seconds ago).
    HasSessions(oneshot::Sender<bool>),
    /// A session's device started or stopped hearing what it is sent.
    DeviceState {
        resource: String,
        session_id: u64,
        state: DeviceState,
    },
    /// The cluster moved the account to another node (cluster/takeover.rs):
    /// the task ends without telling anyone, and what is queued after this
    /// goes to the new owner. Its sessions bind there again.
    Handoff,
    /// The node of one of the account's sessions died (cluster): unbind
    /// it, or, when this task never had it (the owner died with it), tell
    /// the contacts it is gone.
    Vanished { resource: String, session_id: u64 },
    /// The cluster changed: rooms may have moved to another node, so ask
    /// each room now whether the account is still in (XEP-0410).
    CheckRooms,
    /// A resource's XEP-0115 caps were looked up.
    CapsResolved {
        resource: String,
        session_id: u64,
        features: Option<crate::caps::Features>,
    },
}

/// Features a Bind 2 request (XEP-0386) enables as the resource is bound.
#[derive(Debug, Default, Clone, Copy)]
pub struct BindInline {
    /// XEP-0280 carbons on.
    pub carbons: bool,
    /// Join the session to the account's rooms (account-based MUC joining).
    pub rooms: bool,
}

/// Queue entries are boxed, so that a queue's slots are a pointer each.
pub(crate) type QueuedMsg = Box<AccountMsg>;

#[derive(Clone)]
pub struct AccountHandle {
    pub(crate) tx: mailbox::Sender<QueuedMsg>,
    pub(crate) generation: u64,
}

impl AccountHandle {
    /// Queue a message; gives it back when the task is gone or overloaded.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, msg: AccountMsg) -> Result<(), AccountMsg> {
        self.tx.try_send(Box::new(msg)).map_err(|e| match e {
            TrySendError::Full(m) | TrySendError::Closed(m) => *m,
        })
    }
}

/// Capacity of an account's queue: large, because every session and contact
/// of the account writes to it, but bounded so one account cannot hoard memory.
const QUEUE: usize = 4096;

pub(crate) struct Account {
    server: Arc<Server>,
    jid: BareJid,
    exists: bool,
    resources: Resources,
    roster: RosterCache,
    /// XEP-0191 block list, loaded on first use.
    blocklist: Option<Vec<jid::Jid>>,
    /// XEP-0313 preferences, loaded on first use.
    mam_prefs: Option<archive::Prefs>,
    /// Contacts' resources seen available, to offer them our PEP data once.
    /// Other entities' resources whose available presence reached our
    /// sessions and that have not gone unavailable since (so that blocking
    /// one shows it going, XEP-0191 §3.3), each with whether it was offered
    /// our PEP data (XEP-0163 §6.2: once, when it may see our presence).
    contact_resources: std::collections::HashMap<jid::FullJid, bool>,
    /// Rooms the account occupies (account-based MUC joining).
    rooms: rooms::Rooms,
    /// XEP-0357 registrations, loaded on first use.
    push: Option<Box<push::Registrations>>,
}

/// The next tick of a timer that may not exist (then never).
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Account {
    pub(crate) fn spawn(server: &Arc<Server>, jid: BareJid, generation: u64) -> AccountHandle {
        let (tx, rx) = mailbox::channel(QUEUE);
        let account = Account {
            server: server.clone(),
            jid,
            exists: false,
            resources: Resources::default(),
            roster: RosterCache::default(),
            blocklist: None,
            mam_prefs: None,
            contact_resources: Default::default(),
            rooms: Default::default(),
            push: None,
        };
        tokio::spawn(account.run(rx, generation));
        AccountHandle { tx, generation }
    }

    async fn run(mut self, mut rx: mailbox::Receiver<QueuedMsg>, generation: u64) {
        // The message that started the task. A bind comes from a session
        // that has just authenticated against the store, which proves the
        // account exists: most tasks start that way, and skip the lookup.
        let mut first = rx.recv().await;
        self.exists = match first.as_deref() {
            None => return,
            Some(AccountMsg::Bind { .. }) => true,
            Some(_) => match self.server.stores.accounts.account_exists(&self.jid).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(account = %self.jid, error = %e, "cannot look up account");
                    false
                }
            },
        };
        let every = self.server.config.account_muc.self_ping_interval;
        // Made only while the account is in rooms: most accounts never
        // are, and a timer is an allocation each of them would keep.
        let mut self_ping: Option<tokio::time::Interval> = None;
        loop {
            let pinging = every > 0 && !self.rooms.map.is_empty();
            if !pinging {
                self_ping = None;
            } else if self_ping.is_none() {
                let period = std::time::Duration::from_secs(every);
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                self_ping = Some(interval);
            }
            let msg = if let Some(m) = first.take() {
                Some(m)
            } else {
                tokio::select! {
                    msg = rx.recv() => msg,
                    _ = tick(&mut self_ping), if pinging => {
                        self.self_ping_rooms();
                        continue;
                    }
                }
            };
            let Some(msg) = msg else { break };
            if matches!(*msg, AccountMsg::Handoff) {
                if self.server.router.remove_account(&self.jid, generation) {
                    rx.close();
                    while let Some(msg) = rx.recv().await {
                        self.server.send_to_account(&self.jid, *msg);
                    }
                    break;
                }
                continue;
            }
            // Boxed so that the task's idle state stays small: the
            // handlers' own state lives only while a message is handled.
            Box::pin(self.handle(*msg)).await;
            // Persistent room memberships keep the account task alive.
            if self.resources.is_empty() && !self.rooms.has_persistent() && rx.is_empty() {
                // Leave the router's map first, then close the queue and hand
                // whatever slipped in meanwhile to a fresh task, so nothing
                // sent to this account is lost to the exit.
                if self.server.router.remove_account(&self.jid, generation) {
                    rx.close();
                    while let Some(msg) = rx.recv().await {
                        self.server.send_to_account(&self.jid, *msg);
                    }
                    break;
                }
            }
        }
    }

    async fn handle(&mut self, msg: AccountMsg) {
        match msg {
            AccountMsg::Bind {
                resource,
                handle,
                inline,
                reply,
            } => {
                let max = self.server.config.limits.max_resources;
                if self.resources.len() >= max && self.resources.get(&resource).is_none() {
                    // RFC 6120 §7.6.2.1: resource-constraint, said by the
                    // negotiation; a replaced resource does not count.
                    crate::limits::hit(crate::limits::Limit::Resources);
                    let _ = reply.send(None);
                    return;
                }
                self.bind(resource.clone(), handle).await;
                let mut rooms = Vec::new();
                if let Some(inline) = inline {
                    // XEP-0386: offline messages are not sent; the client
                    // catches up from the archive (which has them, when on).
                    if self.server.config.archive.enabled {
                        self.drop_offline().await;
                    }
                    if inline.carbons {
                        if let Some(e) = self.resources.get_mut(&resource) {
                            e.carbons = true;
                        }
                    }
                    if inline.rooms {
                        rooms = self.join_session_to_rooms(&resource).await;
                    }
                }
                let _ = reply.send(Some(rooms));
            }
            AccountMsg::Unbind {
                resource,
                session_id,
            } => {
                self.unbind(&resource, session_id).await;
            }
            AccountMsg::FromSession { resource, stanza } => {
                self.handle_own_stanza(&resource, stanza).await;
            }
            AccountMsg::Deliver(stanza) => self.deliver(stanza).await,
            AccountMsg::Bookmarks(list) => self.sync_bookmarks(list),
            AccountMsg::RejoinBookmarked(room) => self.rejoin_bookmarked(&room),
            AccountMsg::Flush(done) => {
                let _ = done.send(());
            }
            AccountMsg::CapsResolved {
                resource,
                session_id,
                features,
            } => self.caps_resolved(&resource, session_id, features),
            AccountMsg::DeviceState {
                resource,
                session_id,
                state,
            } => self.device_state(&resource, session_id, state),
            AccountMsg::PushRegistrations { revoke, reply } => {
                let left = self.push_registrations_revoking(&revoke).await;
                let _ = reply.send(left);
            }
            AccountMsg::EndSessions {
                reason,
                text,
                reply,
            } => {
                let mut n = 0;
                for (_, e) in self.resources.iter() {
                    e.handle.close(reason, &text);
                    n += 1;
                }
                let _ = reply.send(n);
            }
            AccountMsg::HasSessions(reply) => {
                let _ = reply.send(!self.resources.is_empty());
            }
            AccountMsg::CheckRooms => self.self_ping_rooms(),
            AccountMsg::Vanished {
                resource,
                session_id,
            } => {
                if !self.unbind(&resource, session_id).await
                    && self.resources.get(&resource).is_none()
                {
                    self.vanished(&resource).await;
                }
            }
            AccountMsg::Handoff => {}
        }
    }

    /// The session ended: forget it and tell whoever must know; `false`
    /// when that session was not (or no longer) bound here.
    async fn unbind(&mut self, resource: &str, session_id: u64) -> bool {
        let Some(entry) = self.resources.remove_if(resource, session_id) else {
            return false;
        };
        self.rooms_session_gone(resource);
        self.session_gone(entry).await;
        true
    }

    /// RFC 6120 §7.7.2.2: a second session binding the same resource
    /// replaces the first, which is closed with a `conflict` stream error.
    async fn bind(&mut self, resource: String, handle: SessionHandle) {
        self.device_hears_again(&resource);
        if let Some(old) = self.resources.insert(resource, handle) {
            old.handle.close(
                roost_proto::StreamError::Conflict,
                "replaced by a new session",
            );
            self.session_gone(old).await;
        }
    }

    async fn handle_own_stanza(&mut self, resource: &str, mut stanza: Stanza) {
        if stanza.kind == roost_proto::StanzaKind::Presence {
            // XEP-0398 §4: also into directed presence and room joins.
            self.stamp_avatar(&mut stanza.el);
        }
        // XEP-0191 §3.6: nothing goes to a blocked entity.
        if let Some(to) = stanza.to.clone() {
            if stanza.kind != roost_proto::StanzaKind::Iq && self.is_blocked(&to).await {
                if stanza.kind == roost_proto::StanzaKind::Message {
                    if let Some(e) = self.resources.get(resource) {
                        e.handle
                            .send(blocking::blocked_error().reply_to(&stanza.el));
                    }
                }
                return;
            }
        }
        let Some(stanza) = self.rooms_outbound(resource, stanza).await else {
            return;
        };
        match stanza.kind {
            roost_proto::StanzaKind::Presence => {
                // Rooms the session joined follow its broadcast presence
                // (a copy only when there is such a room).
                let broadcast = (stanza.to.is_none() && self.rooms_joined_by(resource))
                    .then(|| stanza.el.clone());
                self.outbound_presence(resource, stanza).await;
                if let Some(p) = broadcast {
                    self.session_presence_changed(resource, &p);
                }
            }
            roost_proto::StanzaKind::Iq
                if stanza.to.as_ref().is_some_and(|t| t.to_bare() != self.jid) =>
            {
                self.server.route(stanza);
            }
            roost_proto::StanzaKind::Iq => {
                let payload_ns = stanza
                    .el
                    .children()
                    .next()
                    .map(|c| c.ns())
                    .unwrap_or_default();
                let reply = match payload_ns.as_str() {
                    roost_proto::ns::CARBONS => self.carbons_iq(resource, &stanza),
                    roost_proto::ns::BLOCKING => self.blocking_iq(resource, &stanza).await,
                    roost_proto::ns::MAM => self.mam_iq(resource, &stanza).await,
                    push::NS => self.push_iq(resource, &stanza).await,
                    _ => self.roster_iq(resource, &stanza).await,
                };
                self.reply_to_session(resource, &stanza, reply);
            }
            roost_proto::StanzaKind::Message => {
                let mut stanza = stanza;
                if let Some(to) = stanza.to.clone() {
                    if to.to_bare() != self.jid {
                        let receipt = stanza.receipt.clone();
                        self.archive_message(&mut stanza.el, &to, false, receipt.as_ref())
                            .await;
                    }
                }
                // XEP-0280 §6: other sessions see what this one sent.
                self.carbon_copies("sent", &stanza.el, &[resource]);
                self.server.route(stanza);
            }
        }
    }

    /// Send an IQ result or error back to one of the account's sessions.
    fn reply_to_session(
        &self,
        resource: &str,
        request: &Stanza,
        reply: Result<Option<Element>, StanzaError>,
    ) {
        if let Some(entry) = self.resources.get(resource) {
            entry
                .handle
                .send(crate::server::iq_reply(&request.el, reply));
        }
    }
}
