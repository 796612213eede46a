//! XEP-0045 §6.1–§6.3: the MUC service on its own domain. It answers for
//! itself (disco, ping) and holds only `room JID -> queue` handles; each
//! room is a task (`room/`) started by its first stanza and stopped when
//! empty and idle. Queues are bounded: a busy room refuses stanzas rather
//! than slow down the sender or any other room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use jid::BareJid;
use minidom::Element;
use roost_core::router::Service;
use roost_core::server::iq_reply;
use roost_core::Server;
use roost_proto::{Condition, Stanza, StanzaError, StanzaKind};
use roost_store::{ArchiveStore, MucStore, StoreError, Stores};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;

use crate::config::MucConfig;
use crate::room::Room;
use crate::{disco, ns};

/// Stanzas waiting for one room; more are refused with `resource-constraint`.
const ROOM_QUEUE: usize = 1024;

/// Where the service's stanzas go. In the server this is the router
/// (`Server::route_element`), so that account tasks see room traffic;
/// tests can capture it instead.
pub trait Outbox: Send + Sync + 'static {
    fn send(&self, el: Element);
}

/// The router of a running server. Weak, so that the service (which the
/// server's router holds) does not keep the server alive.
struct ServerOutbox(Weak<Server>);

impl Outbox for ServerOutbox {
    fn send(&self, el: Element) {
        if let Some(server) = self.0.upgrade() {
            server.route_element(el);
        }
    }
}

/// What a room task needs from its surroundings.
#[derive(Clone)]
pub(crate) struct Env {
    pub out: Arc<dyn Outbox>,
    pub shutdown: watch::Receiver<bool>,
}

struct RoomHandle {
    tx: mpsc::Sender<Stanza>,
    generation: u64,
}

/// State shared by the service and its room tasks.
pub(crate) struct Shared {
    pub config: MucConfig,
    /// The service's domain.
    pub domain: String,
    /// The server's domain: its accounts are the local users.
    pub host: String,
    pub rooms_store: Arc<dyn MucStore>,
    pub archive: Arc<dyn ArchiveStore>,
    /// Rooms each user is an occupant of (`max_rooms_per_user`).
    pub user_rooms: Arc<crate::user_rooms::UserRooms>,
    handles: Mutex<HashMap<String, RoomHandle>>,
    generation: AtomicU64,
    env: OnceLock<Env>,
}

/// The MUC service, registered with the router for its domain.
pub struct MucService {
    shared: Arc<Shared>,
}

impl MucService {
    /// Open the service for a server serving `host`. Temporary rooms left
    /// in storage by the last stop are removed first: they vanished when the
    /// server stopped.
    pub async fn open(
        config: MucConfig,
        host: &str,
        stores: &Stores,
    ) -> Result<Arc<MucService>, StoreError> {
        Self::open_with(config, host, stores, true).await
    }

    /// As `open`; `sole` is false for a node of a cluster, whose peers'
    /// temporary rooms in the shared storage are alive.
    pub async fn open_with(
        config: MucConfig,
        host: &str,
        stores: &Stores,
        sole: bool,
    ) -> Result<Arc<MucService>, StoreError> {
        let domain = config.service_domain(host);
        let gone = if sole {
            stores.muc.remove_temporary_rooms(&domain).await?
        } else {
            Vec::new()
        };
        for room in &gone {
            stores.archive.remove_archive(room).await?;
        }
        if !gone.is_empty() {
            tracing::info!(
                rooms = gone.len(),
                "removed temporary rooms of the last run"
            );
        }
        Ok(Arc::new(MucService {
            shared: Arc::new(Shared {
                domain,
                host: host.to_string(),
                rooms_store: stores.muc.clone(),
                archive: stores.archive.clone(),
                user_rooms: Arc::new(crate::user_rooms::UserRooms::new(config.max_rooms_per_user)),
                handles: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(1),
                env: OnceLock::new(),
                config,
            }),
        }))
    }

    /// The domain the service answers on.
    pub fn domain(&self) -> &str {
        &self.shared.domain
    }

    /// Send the service's output to `out` and stop rooms when `shutdown`
    /// turns true. Done by the first `deliver` from the server; tests call
    /// it before `handle`. `false` if already connected.
    pub fn connect(&self, out: Arc<dyn Outbox>, shutdown: watch::Receiver<bool>) -> bool {
        self.shared.env.set(Env { out, shutdown }).is_ok()
    }

    /// Room tasks running now.
    pub fn active_rooms(&self) -> usize {
        self.shared
            .handles
            .lock()
            .map(|h| h.len())
            .unwrap_or_default()
    }

    /// Take a stanza addressed to the service or one of its rooms; its
    /// `from` must be stamped.
    pub fn handle(&self, stanza: Stanza) {
        let Some(env) = self.shared.env.get() else {
            tracing::warn!("MUC service used before it was connected; stanza dropped");
            return;
        };
        let (Some(to), Some(_)) = (stanza.to.clone(), stanza.from.as_ref()) else {
            return;
        };
        if to.node().is_none() {
            self.shared.service_stanza(env, stanza);
        } else {
            self.shared.dispatch(to.to_bare(), stanza);
        }
    }
}

impl Service for MucService {
    fn owned_per_address(&self) -> bool {
        true
    }

    /// Rooms another node owns now stop here: their queues close, and the
    /// tasks end once they have handled what was queued.
    fn release(&self, keep: &dyn Fn(&str) -> bool) {
        let mut handles = self.shared.lock_handles();
        let before = handles.len();
        handles.retain(|room, _| keep(room));
        let released = before - handles.len();
        if released > 0 {
            tracing::info!(rooms = released, "rooms moved to another cluster node");
        }
    }

    fn running(&self) -> Vec<String> {
        self.shared.lock_handles().keys().cloned().collect()
    }

    fn deliver(&self, server: &Arc<Server>, stanza: Stanza) {
        self.shared.env.get_or_init(|| Env {
            out: Arc::new(ServerOutbox(Arc::downgrade(server))),
            shutdown: server.shutdown_signal(),
        });
        self.handle(stanza);
    }

    fn name(&self) -> Option<String> {
        Some(self.shared.config.name.clone())
    }
}

/// Send an error for `stanza` unless it is itself an error or a response
/// (RFC 6120 §8.3.1).
pub(crate) fn bounce(out: &dyn Outbox, stanza: &Stanza, err: StanzaError) {
    if stanza.is_error() || (stanza.kind == StanzaKind::Iq && !stanza.is_iq_request()) {
        return;
    }
    out.send(err.reply_to(&stanza.el));
}

impl Shared {
    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoomHandle>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a stanza for its room, starting the room's task if needed.
    fn dispatch(self: &Arc<Self>, room: BareJid, stanza: Stanza) {
        let Some(env) = self.env.get() else {
            return;
        };
        let key = room.as_str().to_string();
        let mut handles = self.lock_handles();
        let mut stanza = stanza;
        // Twice at most: a task that ended without retiring (it panicked)
        // leaves a closed queue behind, replaced by a fresh task.
        for _ in 0..2 {
            let tx = match handles.get(&key) {
                Some(h) if !h.tx.is_closed() => h.tx.clone(),
                _ => {
                    let h = self.spawn_room(room.clone(), env.clone());
                    let tx = h.tx.clone();
                    handles.insert(key.clone(), h);
                    tx
                }
            };
            match tx.try_send(stanza) {
                Ok(()) => return,
                Err(TrySendError::Closed(back)) => {
                    handles.remove(&key);
                    stanza = back;
                }
                Err(TrySendError::Full(back)) => {
                    drop(handles);
                    tracing::warn!(room = %room, "room queue full; stanza refused");
                    bounce(
                        env.out.as_ref(),
                        &back,
                        StanzaError::new(Condition::ResourceConstraint)
                            .with_text("the room is overloaded"),
                    );
                    return;
                }
            }
        }
    }

    fn spawn_room(self: &Arc<Self>, jid: BareJid, env: Env) -> RoomHandle {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let room = Room::new(self.clone(), env, jid, generation);
        tokio::spawn(room.run(rx));
        RoomHandle { tx, generation }
    }

    /// Called by a room task that wants to stop: it may only if its queue
    /// is empty. Stanzas are queued under the same lock, so none can arrive
    /// once this returned `true`.
    pub(crate) fn retire(
        &self,
        room: &BareJid,
        generation: u64,
        rx: &mpsc::Receiver<Stanza>,
    ) -> bool {
        let mut handles = self.lock_handles();
        if !rx.is_empty() {
            return false;
        }
        if handles
            .get(room.as_str())
            .is_some_and(|h| h.generation == generation)
        {
            handles.remove(room.as_str());
        }
        true
    }

    /// Stanzas to the service's own JID.
    fn service_stanza(self: &Arc<Self>, env: &Env, stanza: Stanza) {
        match stanza.kind {
            StanzaKind::Iq if stanza.is_iq_request() => {
                let shared = self.clone();
                let out = env.out.clone();
                tokio::spawn(async move {
                    let result = shared.service_iq(&stanza).await;
                    out.send(iq_reply(&stanza.el, result));
                });
            }
            StanzaKind::Message => bounce(
                env.out.as_ref(),
                &stanza,
                StanzaError::service_unavailable()
                    .with_text("messages go to a room, not to the service"),
            ),
            _ => {}
        }
    }

    async fn service_iq(&self, stanza: &Stanza) -> Result<Option<Element>, StanzaError> {
        let mut children = stanza.el.children();
        let (Some(payload), None) = (children.next(), children.next()) else {
            return Err(StanzaError::bad_request(
                "an IQ request has exactly one child",
            ));
        };
        let get = stanza.type_attr() == Some("get");
        let ns = payload.ns();
        match (get, ns.as_str(), payload.name()) {
            // §6.2
            (true, ns::DISCO_INFO, "query") => {
                if payload.attr("node").is_some() {
                    return Err(StanzaError::new(Condition::ItemNotFound));
                }
                Ok(Some(disco::service_info(&self.config.name)))
            }
            // §6.3: public rooms only.
            (true, ns::DISCO_ITEMS, "query") => {
                if payload.attr("node").is_some() {
                    return Err(StanzaError::new(Condition::ItemNotFound));
                }
                let rooms = self.rooms_store.rooms(&self.domain).await.map_err(|e| {
                    tracing::error!(error = %e, "listing rooms failed");
                    StanzaError::internal()
                })?;
                Ok(Some(disco::service_items(&rooms)))
            }
            (true, ns::PING, "ping") => Ok(None),
            _ => Err(StanzaError::service_unavailable()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The service without a server: stanzas in through `handle`, out
    //! through a capturing outbox, so that the addresses the rooms use can be
    //! checked exactly.

    use std::time::Duration;

    use roost_store::MemoryStore;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

    use super::*;

    struct Capture(UnboundedSender<Element>);

    impl Outbox for Capture {
        fn send(&self, el: Element) {
            let _ = self.0.send(el);
        }
    }

    struct Harness {
        service: Arc<MucService>,
        out: UnboundedReceiver<Element>,
        shutdown: watch::Sender<bool>,
    }

    impl Harness {
        async fn new() -> Harness {
            let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
            let service = MucService::open(MucConfig::default(), "localhost", &stores)
                .await
                .expect("open");
            let (tx, out) = unbounded_channel();
            let (shutdown_tx, shutdown) = watch::channel(false);
            assert!(service.connect(Arc::new(Capture(tx)), shutdown));
            Harness {
                service,
                out,
                shutdown: shutdown_tx,
            }
        }

        fn send(&self, xml: &str) {
            let el: Element = xml.parse().expect("test XML");
            self.service.handle(Stanza::parse(el).expect("stanza"));
        }

        /// The next stanza matching `pred`; others are skipped.
        async fn expect(&mut self, what: &str, pred: impl Fn(&Element) -> bool) -> Element {
            let wait = async {
                while let Some(el) = self.out.recv().await {
                    if pred(&el) {
                        return el;
                    }
                }
                panic!("outbox closed while waiting for {what}");
            };
            tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        }
    }

    fn codes(el: &Element) -> Vec<String> {
        el.get_child("x", ns::MUC_USER)
            .map(|x| {
                x.children()
                    .filter(|c| c.name() == "status")
                    .filter_map(|c| c.attr("code").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    const ROOM: &str = "coven@conference.localhost";

    #[tokio::test]
    async fn a_bare_jid_occupant_joins_and_gets_room_traffic_at_its_bare_jid() {
        let mut h = Harness::new().await;
        assert_eq!(h.service.domain(), "conference.localhost");
        h.send(&format!(
            "<presence xmlns='jabber:client' from='alice@localhost' to='{ROOM}/alice' id='j1'>\
             <x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        let own = h.expect("self-presence", |e| e.name() == "presence").await;
        assert_eq!(own.attr("to"), Some("alice@localhost"));
        assert_eq!(own.attr("from"), Some(&*format!("{ROOM}/alice")));
        assert_eq!(own.attr("id"), Some("j1"));
        assert!(codes(&own).contains(&"110".to_string()));
        assert!(codes(&own).contains(&"201".to_string()));
        let subject = h.expect("subject", |e| e.name() == "message").await;
        assert_eq!(subject.attr("to"), Some("alice@localhost"));

        // Instant room, asked for from the bare JID.
        h.send(&format!(
            "<iq xmlns='jabber:client' type='set' id='unlock' from='alice@localhost' to='{ROOM}'>\
             <query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'/></query></iq>"
        ));
        let r = h.expect("unlock result", |e| e.name() == "iq").await;
        assert_eq!(r.attr("type"), Some("result"));
        assert_eq!(r.attr("to"), Some("alice@localhost"));

        // Bob joins from a full JID: alice hears at her bare JID.
        h.send(&format!(
            "<presence xmlns='jabber:client' from='bob@localhost/phone' to='{ROOM}/bob'>\
             <x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        let seen = h
            .expect("bob's presence to alice", |e| {
                e.name() == "presence" && e.attr("to") == Some("alice@localhost")
            })
            .await;
        assert_eq!(seen.attr("from"), Some(&*format!("{ROOM}/bob")));
        h.expect("bob's self-presence", |e| {
            e.attr("to") == Some("bob@localhost/phone") && codes(e).contains(&"110".into())
        })
        .await;

        // A groupchat message reaches the bare JID, stamped.
        h.send(&format!(
            "<message xmlns='jabber:client' type='groupchat' id='g1' from='bob@localhost/phone' \
             to='{ROOM}'><body>hello</body></message>"
        ));
        let m = h
            .expect("groupchat to alice", |e| {
                e.name() == "message" && e.attr("to") == Some("alice@localhost")
            })
            .await;
        assert_eq!(m.attr("id"), Some("g1"));
        let sid = m.get_child("stanza-id", ns::SID).expect("stanza-id");
        assert_eq!(sid.attr("by"), Some(ROOM));
        assert!(m.get_child("occupant-id", ns::OCCUPANT_ID).is_some());

        // A private message too.
        h.send(&format!(
            "<message xmlns='jabber:client' type='chat' from='bob@localhost/phone' \
             to='{ROOM}/alice'><body>psst</body></message>"
        ));
        let pm = h
            .expect("private message", |e| {
                e.name() == "message" && e.attr("type") == Some("chat")
            })
            .await;
        assert_eq!(pm.attr("to"), Some("alice@localhost"));
        assert_eq!(pm.attr("from"), Some(&*format!("{ROOM}/bob")));

        // XEP-0410: the bare JID's self-ping is answered by the room.
        h.send(&format!(
            "<iq xmlns='jabber:client' type='get' id='p1' from='alice@localhost' to='{ROOM}/alice'>\
             <ping xmlns='urn:xmpp:ping'/></iq>"
        ));
        let pong = h
            .expect("ping result", |e| e.attr("id") == Some("p1"))
            .await;
        assert_eq!(pong.attr("type"), Some("result"));
        assert_eq!(pong.attr("to"), Some("alice@localhost"));

        // Leaving from the bare JID.
        h.send(&format!(
            "<presence xmlns='jabber:client' type='unavailable' from='alice@localhost' \
             to='{ROOM}/alice'/>"
        ));
        let gone = h
            .expect("unavailable self-presence", |e| {
                e.attr("type") == Some("unavailable") && e.attr("to") == Some("alice@localhost")
            })
            .await;
        assert!(codes(&gone).contains(&"110".to_string()));
    }

    #[tokio::test]
    async fn a_bare_jid_and_a_full_jid_of_the_same_account_are_different_occupants() {
        let mut h = Harness::new().await;
        for (from, nick) in [("alice@localhost", "a1"), ("alice@localhost/phone", "a2")] {
            h.send(&format!(
                "<presence xmlns='jabber:client' from='{from}' to='{ROOM}/{nick}'>\
                 <x xmlns='http://jabber.org/protocol/muc'/></presence>"
            ));
            if nick == "a1" {
                h.send(&format!(
                    "<iq xmlns='jabber:client' type='set' id='u' from='alice@localhost' to='{ROOM}'>\
                     <query xmlns='http://jabber.org/protocol/muc#owner'>\
                     <x xmlns='jabber:x:data' type='submit'/></query></iq>"
                ));
            }
            h.expect("self-presence", |e| {
                e.name() == "presence"
                    && e.attr("to") == Some(from)
                    && codes(e).contains(&"110".into())
            })
            .await;
        }
        assert_eq!(h.service.active_rooms(), 1);
    }

    #[tokio::test]
    async fn occupants_hear_332_when_the_server_shuts_down() {
        let mut h = Harness::new().await;
        h.send(&format!(
            "<presence xmlns='jabber:client' from='alice@localhost/home' to='{ROOM}/alice'>\
             <x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        h.expect("self-presence", |e| codes(e).contains(&"110".into()))
            .await;
        h.shutdown.send_replace(true);
        let bye = h
            .expect("shutdown presence", |e| {
                e.attr("type") == Some("unavailable")
            })
            .await;
        assert_eq!(bye.attr("to"), Some("alice@localhost/home"));
        assert_eq!(codes(&bye), ["110", "332"]);
        // The room task is gone.
        for _ in 0..50 {
            if h.service.active_rooms() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("room task still running");
    }

    #[tokio::test]
    async fn an_idle_empty_persistent_room_stops_its_task_and_comes_back_from_storage() {
        let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
        let config = MucConfig {
            idle_room_seconds: 1,
            ..MucConfig::default()
        };
        let service = MucService::open(config, "localhost", &stores)
            .await
            .expect("open");
        let (tx, out) = unbounded_channel();
        let (shutdown_tx, shutdown) = watch::channel(false);
        service.connect(Arc::new(Capture(tx)), shutdown);
        let mut h = Harness {
            service,
            out,
            shutdown: shutdown_tx,
        };
        h.send(&format!(
            "<presence xmlns='jabber:client' from='alice@localhost/home' to='{ROOM}/alice'>\
             <x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        h.send(&format!(
            "<iq xmlns='jabber:client' type='set' id='c' from='alice@localhost/home' to='{ROOM}'>\
             <query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>\
             <field var='muc#roomconfig_persistentroom'><value>1</value></field>\
             <field var='muc#roomconfig_roomname'><value>Kept</value></field></x></query></iq>"
        ));
        h.expect("configured", |e| e.attr("id") == Some("c")).await;
        h.send(&format!(
            "<presence xmlns='jabber:client' type='unavailable' from='alice@localhost/home' \
             to='{ROOM}/alice'/>"
        ));
        h.expect("left", |e| e.attr("type") == Some("unavailable"))
            .await;
        assert_eq!(h.service.active_rooms(), 1);
        let mut stopped = false;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if h.service.active_rooms() == 0 {
                stopped = true;
                break;
            }
        }
        assert!(stopped, "idle room task still running");
        h.send(&format!(
            "<iq xmlns='jabber:client' type='get' id='i' from='bob@localhost/x' to='{ROOM}'>\
             <query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ));
        let info = h.expect("info", |e| e.attr("id") == Some("i")).await;
        assert_eq!(info.attr("type"), Some("result"));
        let name = info
            .get_child("query", ns::DISCO_INFO)
            .and_then(|q| q.get_child("identity", ns::DISCO_INFO))
            .and_then(|i| i.attr("name"));
        assert_eq!(name, Some("Kept"));
    }
}
