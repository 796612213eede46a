//! XEP-0045 §7–§10: one room, run as a task that owns all of its state
//! (occupants, affiliations, configuration, subject, history). The task
//! loads the room from storage when it starts, handles its stanzas one at a
//! time, and stops when the room is empty and idle (or gone, or the server
//! shuts down, §11.2). Storage is written before anyone is told.
//!
//! Files: `join.rs` (entering, leaving, nick and presence changes),
//! `message.rs` (groupchat, subject, private messages, invitations),
//! `iq.rs` (disco, self-ping, IQs between occupants), `moderation.rs`
//! (`muc#admin`), `config_form.rs` (`muc#owner`), `register.rs` (§7.10),
//! `archive.rs` (XEP-0313), `retraction.rs` (XEP-0424/0425), `vcard.rs`
//! (XEP-0054/XEP-0486 room avatars), `voice.rs` (§7.13, §8.6 voice requests),
//! `history.rs`, `occupant.rs`, `affiliation.rs`.

pub(crate) mod affiliation;
mod archive;
pub(crate) mod config_form;
mod history;
mod iq;
mod join;
mod message;
mod moderation;
pub(crate) mod occupant;
mod register;
mod retraction;
mod vcard;
mod voice;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{Condition, Stanza, StanzaError, StanzaKind};
use roost_store::{ArchiveQuery, StoredSubject};
use tokio::sync::mpsc;

use self::affiliation::AffiliationEntry;
use self::config_form::RoomConfig;
use self::history::{History, HistoryEntry};
use self::iq::PendingIqs;
use self::occupant::{Notice, Occupants};
use crate::service::{Env, Shared};

pub(crate) use self::config_form::Settings;

/// An IQ handler's answer: the result payload (or none), or an error.
pub(crate) type IqResult = Result<Option<Element>, StanzaError>;

/// Open mediated invitations remembered for declines (§7.8.2).
const MAX_INVITES: usize = 256;

pub(crate) struct Room {
    jid: BareJid,
    generation: u64,
    shared: Arc<Shared>,
    env: Env,
    /// The room could not be read from storage: every stanza gets an error
    /// and the task stops, so that the next stanza tries again.
    failed: bool,
    /// Created (and not destroyed).
    exists: bool,
    /// §10.1.1: created, awaiting its initial configuration.
    locked: bool,
    /// When a locked room is destroyed unless configured (`lock_timeout`).
    lock_deadline: Option<tokio::time::Instant>,
    salt: String,
    config: RoomConfig,
    affiliations: HashMap<BareJid, AffiliationEntry>,
    occupants: Occupants,
    subject: Option<StoredSubject>,
    history: History,
    pending_iqs: PendingIqs,
    /// (invitee, inviter) of recent mediated invitations.
    invites: VecDeque<(BareJid, Jid)>,
    /// Nicks of visitors whose voice request awaits a moderator (§7.13).
    voice_requests: std::collections::HashSet<String>,
    /// XEP-0486: the room's vCard and its avatar hash.
    vcard: Option<vcard::RoomVcard>,
    /// While set, what the room sends is held back (sent after an IQ's
    /// result, in the order the spec asks).
    deferred: Mutex<Option<Vec<Element>>>,
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Milliseconds since the Unix epoch (how the stores keep time).
pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn time_of(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Room {
    pub(crate) fn new(shared: Arc<Shared>, env: Env, jid: BareJid, generation: u64) -> Room {
        let user_rooms = shared.user_rooms.clone();
        let config = RoomConfig::new(&shared.config);
        Room {
            jid,
            generation,
            shared,
            env,
            failed: false,
            exists: false,
            locked: false,
            lock_deadline: None,
            salt: String::new(),
            config,
            affiliations: HashMap::new(),
            occupants: Occupants::counted(user_rooms),
            subject: None,
            history: History::default(),
            pending_iqs: PendingIqs::default(),
            invites: VecDeque::new(),
            voice_requests: Default::default(),
            vcard: None,
            deferred: Mutex::new(None),
        }
    }

    /// The task: load, then handle stanzas until the room may stop.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Stanza>) {
        if let Err(e) = self.load().await {
            tracing::error!(room = %self.jid, error = %e, "loading the room failed");
            self.failed = true;
        }
        let idle = Duration::from_secs(self.shared.config.idle_room_seconds);
        let mut shutdown = self.env.shutdown.clone();
        loop {
            // Nothing to keep: stop as soon as the queue is empty.
            let pointless = self.failed || !self.exists;
            let wait = if pointless { Duration::ZERO } else { idle };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(stanza) => self.handle(stanza).await,
                    None => break,
                },
                _ = roost_core::server::until_shutdown(&mut shutdown) => {
                    self.shut_down();
                    self.shared.retire(&self.jid, self.generation, &rx);
                    break;
                }
                _ = sleep_until(self.lock_deadline), if self.locked && self.lock_deadline.is_some() => {
                    self.lock_expired().await;
                }
                _ = tokio::time::sleep(wait), if self.occupants.is_empty() => {
                    if self.shared.retire(&self.jid, self.generation, &rx) {
                        tracing::debug!(room = %self.jid, "room task stopped");
                        break;
                    }
                }
            }
        }
    }

    /// Read the room from storage, if it exists.
    async fn load(&mut self) -> Result<(), roost_store::StoreError> {
        let store = &self.shared.rooms_store;
        let Some(stored) = store.room(&self.jid).await? else {
            return Ok(());
        };
        let settings = Settings::parse(&stored.settings);
        let affiliations = store.room_affiliations(&self.jid).await?;
        self.exists = true;
        self.locked = settings.locked;
        if self.locked {
            // A room still locked from before a restart gets a fresh window.
            self.start_lock_timer();
        }
        self.salt = settings.salt;
        self.config = settings.config;
        self.vcard = settings.vcard.as_deref().and_then(vcard::RoomVcard::parse);
        self.config.persistent = stored.persistent;
        self.config.clamp(&self.shared.config);
        self.subject = stored.subject;
        self.affiliations = affiliations
            .into_iter()
            .map(AffiliationEntry::from_stored)
            .collect();
        // History comes from the archive (XEP-0313), so it survives restarts.
        let limit = self.config.history_length;
        if limit > 0 {
            let page = self
                .shared
                .archive
                .query_archive(
                    &self.jid,
                    &ArchiveQuery {
                        max: limit,
                        from_end: true,
                        ..ArchiveQuery::default()
                    },
                )
                .await?;
            for m in page.map(|p| p.messages).unwrap_or_default() {
                match m.xml.parse::<Element>() {
                    Ok(el) => self.history.push(
                        HistoryEntry {
                            stamp: time_of(m.stamp_ms),
                            el,
                        },
                        limit,
                    ),
                    Err(e) => {
                        tracing::warn!(room = %self.jid, error = %e, "unreadable archived message")
                    }
                }
            }
        }
        tracing::debug!(room = %self.jid, "room loaded");
        Ok(())
    }

    fn start_lock_timer(&mut self) {
        let timeout = Duration::from_secs(self.shared.config.lock_timeout);
        self.lock_deadline = Some(tokio::time::Instant::now() + timeout);
    }

    /// `[muc] lock_timeout`: nobody configured the new room; it goes, as
    /// if its owner had cancelled the configuration (§10.1.3).
    async fn lock_expired(&mut self) {
        self.lock_deadline = None;
        if !self.locked || !self.exists {
            return;
        }
        tracing::info!(room = %self.jid, "room never configured; destroyed");
        let reason = Some("The room was never configured.".to_string());
        if let Err(e) = self.destroy(None, reason, None).await {
            tracing::warn!(room = %self.jid, error = ?e, "destroying an unconfigured room failed");
        }
        self.flush();
    }

    /// Forget everything (the room was destroyed or vanished).
    fn reset(&mut self) {
        self.exists = false;
        self.locked = false;
        self.lock_deadline = None;
        self.salt.clear();
        self.config = RoomConfig::new(&self.shared.config);
        self.affiliations.clear();
        self.occupants = Occupants::counted(self.shared.user_rooms.clone());
        self.subject = None;
        self.history.clear();
        self.pending_iqs = PendingIqs::default();
        self.invites.clear();
        self.voice_requests.clear();
    }

    async fn handle(&mut self, stanza: Stanza) {
        let Some(from) = stanza.from.clone() else {
            return;
        };
        if self.failed {
            return self.error(
                &stanza,
                StanzaError::internal().with_text("the room cannot be loaded"),
            );
        }
        let nick = stanza
            .to
            .as_ref()
            .and_then(|t| t.resource())
            .map(|r| r.to_string());
        match stanza.kind {
            StanzaKind::Presence => self.on_presence(&stanza, &from, nick).await,
            StanzaKind::Message => self.on_message(&stanza, &from, nick).await,
            StanzaKind::Iq => self.on_iq(&stanza, &from, nick).await,
        }
        self.flush();
    }

    /// Whether the room is there for `bare`: §7.2.10, a locked room exists
    /// for its owners only.
    fn visible_to(&self, bare: &BareJid) -> bool {
        self.exists
            && (!self.locked || self.affiliation_of(bare) == affiliation::Affiliation::Owner)
    }

    fn send(&self, el: Element) {
        let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        match deferred.as_mut() {
            Some(held) => held.push(el),
            None => {
                drop(deferred);
                self.env.out.send(el);
            }
        }
    }

    /// Hold back what is sent from now until `flush`.
    fn defer(&self) {
        let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        if deferred.is_none() {
            *deferred = Some(Vec::new());
        }
    }

    fn flush(&self) {
        let held = self
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for el in held.unwrap_or_default() {
            self.env.out.send(el);
        }
    }

    /// An error reply from the room (RFC 6120 §8.3; XEP-0045 puts the room
    /// in `by`). Never for errors or IQ responses.
    fn error(&self, stanza: &Stanza, err: StanzaError) {
        if stanza.is_error() || (stanza.kind == StanzaKind::Iq && !stanza.is_iq_request()) {
            return;
        }
        let mut reply = err.reply_to(&stanza.el);
        if let Some(e) = reply.get_child_mut("error", roost_proto::ns::CLIENT) {
            roost_proto::ElementExt::set(e, "by", self.jid.as_str());
        }
        self.send(reply);
    }

    /// §7.14 / §10.1.3: a temporary room disappears with its last occupant,
    /// and so does a room still locked.
    async fn after_departure(&mut self) {
        if self.exists && self.occupants.is_empty() && (!self.config.persistent || self.locked) {
            let _ = self.forget().await;
        }
    }

    /// §11.2: the server stops; every occupant is told (332).
    fn shut_down(&mut self) {
        let nicks: Vec<String> = self.occupants.iter().map(|o| o.nick.clone()).collect();
        for nick in nicks {
            if let Some(mut occ) = self.occupants.remove(&nick) {
                occ.role = affiliation::Role::None;
                let n = Notice {
                    codes: vec![332],
                    ..Notice::unavailable()
                };
                self.send_self_presence(&occ, &n);
            }
        }
        self.flush();
    }

    /// The room is not there (or locked) for this sender.
    fn not_found(&self, stanza: &Stanza) {
        self.error(
            stanza,
            StanzaError::new(Condition::ItemNotFound).with_text("no such room"),
        );
    }

    /// Largest stanza an occupant may send.
    fn too_large(&self, stanza: &Stanza) -> bool {
        roost_proto::ElementExt::to_xml(&stanza.el).len() > self.shared.config.max_message_size
    }
}
