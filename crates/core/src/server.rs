//! The server context shared by every task: configuration, stores, the
//! router's maps, the module registry, TLS settings and the shutdown signal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jid::BareJid;
use minidom::Element;
use roost_proto::{ns, Elem, Stanza, StanzaError};
use roost_store::Stores;
use tokio::sync::{watch, Semaphore};

use crate::c2s::throttle::AuthThrottle;
use crate::config::CoreConfig;
use crate::module::{DuplicateRoute, IqContext, IqResult, Module, Registry, Scope};
use crate::router::Router;

pub struct Server {
    pub config: CoreConfig,
    pub stores: Stores,
    pub router: Router,
    pub registry: Registry,
    pub tls: Arc<rustls::ServerConfig>,
    pub auth_throttle: AuthThrottle,
    /// One permit per open client connection (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
    /// Open and new connections per client address (`limits.*_per_ip`).
    pub addresses: Arc<crate::limits::per_address::AddressLimits>,
    /// The per-stream rates (`limits.stanzas_per_second` and
    /// `bytes_per_second`); `None` when both are off.
    pub shaper_rates: Option<Arc<crate::limits::shaper::Rates>>,
    /// XEP-0198 sessions that can be resumed.
    pub sm: crate::c2s::stream_management::Registry,
    /// IQs the server sent and awaits answers for.
    pub pending_iqs: crate::server_iq::PendingIqs,
    /// XEP-0115 caps cache.
    pub caps: crate::caps::CapsCache,
    /// XEP-0363 uploads (set at start when on).
    pub uploads: std::sync::OnceLock<Arc<crate::upload::Uploads>>,
    /// XEP-0065 bytestreams proxy (set at start when on).
    pub proxy65: std::sync::OnceLock<Arc<crate::proxy65::Proxy65>>,
    /// RFC 5929 tls-server-end-point of our certificate (set at start).
    pub tls_end_point: std::sync::OnceLock<Vec<u8>>,
    /// XEP-0484 FAST: the key tokens are derived from (set at start).
    pub fast_key: std::sync::OnceLock<crate::c2s::fast::FastKey>,
    /// XEP-0357 push counters and unanswered pushes (account/push.rs).
    pub push_ledger: crate::account::push::Ledger,
    /// XEP-0133 disabled accounts, checked at every login (account/disabled.rs).
    pub disabled: crate::account::disabled::DisabledAccounts,
    /// XEP-0398 avatar hashes of the accounts, read at start (account/avatar.rs).
    pub avatars: crate::account::avatar::AvatarHashes,
    pub counters: crate::counters::Counters,
    /// Set once by the server crate: writes room nicks back to bookmarks.
    pub bookmark_nicks: std::sync::OnceLock<Arc<dyn crate::account::BookmarkNicks>>,
    /// Federation, when on (set once at start by the server crate).
    pub s2s: std::sync::OnceLock<Arc<crate::s2s::S2s>>,
    /// The cluster this node belongs to, when `[cluster] enabled`.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// XEP-0115 `ver` of the server's own disco#info (see `stream_caps`).
    pub(crate) own_caps_ver: std::sync::OnceLock<String>,
    shutdown: watch::Sender<bool>,
    next_session_id: AtomicU64,
}

impl Server {
    pub fn new(
        config: CoreConfig,
        stores: Stores,
        modules: Vec<Arc<dyn Module>>,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<Arc<Server>, DuplicateRoute> {
        let registry = Registry::new(modules)?;
        let (shutdown, _) = watch::channel(false);
        crate::limits::queue_budget::set_total(config.limits.queued_bytes_total);
        crate::mam_query::set_max_page(config.limits.max_mam_page);
        Ok(Arc::new(Server {
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            addresses: Arc::new(crate::limits::per_address::AddressLimits::new(
                &config.limits,
            )),
            shaper_rates: crate::limits::shaper::Rates::new(&config.limits),
            router: Router::new(&config.domain),
            config,
            stores,
            registry,
            tls,
            auth_throttle: AuthThrottle::default(),
            sm: Default::default(),
            pending_iqs: Default::default(),
            caps: Default::default(),
            push_ledger: Default::default(),
            disabled: Default::default(),
            avatars: Default::default(),
            fast_key: std::sync::OnceLock::new(),
            tls_end_point: std::sync::OnceLock::new(),
            uploads: std::sync::OnceLock::new(),
            proxy65: std::sync::OnceLock::new(),
            counters: Default::default(),
            bookmark_nicks: std::sync::OnceLock::new(),
            s2s: std::sync::OnceLock::new(),
            own_caps_ver: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
            shutdown,
            next_session_id: AtomicU64::new(1),
        }))
    }

    pub fn next_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Make session ids unique across a cluster (cluster/mod.rs).
    pub(crate) fn seed_session_ids(&self, base: u64) {
        self.next_session_id.fetch_max(base, Ordering::Relaxed);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Close every stream with `system-shutdown` and wait (bounded) until
    /// the sessions have ended, so their last writes reach storage.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.send_replace(true);
        let all = self.config.limits.max_connections as u32;
        let wait = async {
            while self.connections.available_permits() < all as usize {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
        // What sessions handed to account tasks just before closing (a
        // message for an offline contact, say) must reach storage before
        // the process ends. A stanza may cross two accounts (sender, then
        // recipient) and a room, so drain a few rounds.
        for _ in 0..3 {
            let _ = tokio::time::timeout(grace, self.router.flush_accounts()).await;
        }
        // Archive rows are queued without waiting; make them durable.
        let _ = tokio::time::timeout(grace, self.stores.archive.settle_archive()).await;
    }

    pub fn is_local_domain(&self, domain: &str) -> bool {
        domain == self.config.domain
    }

    /// Domains this server answers for: its own and its services' (MUC).
    pub fn hosts(&self, domain: &str) -> bool {
        self.is_local_domain(domain) || self.router.has_service(domain)
    }

    /// Answer an IQ request with the module registered for its payload.
    pub async fn handle_iq(
        self: &Arc<Self>,
        scope: Scope,
        account: Option<&BareJid>,
        stanza: &Stanza,
        own: bool,
    ) -> Element {
        let result = self.dispatch_iq(scope, account, stanza, own, false).await;
        iq_reply(&stanza.el, result)
    }

    pub async fn dispatch_iq(
        self: &Arc<Self>,
        scope: Scope,
        account: Option<&BareJid>,
        stanza: &Stanza,
        own: bool,
        peer_is_loopback: bool,
    ) -> IqResult {
        // RFC 6120 §8.2.3: a request carries exactly one payload.
        let mut children = stanza.el.children();
        let (Some(payload), None) = (children.next(), children.next()) else {
            return Err(StanzaError::bad_request(
                "an IQ request has exactly one child",
            ));
        };
        let Some(module) = self.registry.iq_handler(scope, payload) else {
            return Err(StanzaError::service_unavailable());
        };
        let ctx = IqContext {
            server: self,
            scope,
            from: stanza.from.as_ref(),
            account,
            own,
            peer_is_loopback,
        };
        module.handle_iq(ctx, stanza).await
    }

    /// Answer an IQ and route the reply to the requester.
    pub async fn answer_iq(
        self: &Arc<Self>,
        scope: Scope,
        account: Option<&BareJid>,
        stanza: Stanza,
        own: bool,
    ) {
        let reply = self.handle_iq(scope, account, &stanza, own).await;
        self.route_element(reply);
    }

    /// Route an element the server built; it must carry valid addresses.
    pub fn route_element(self: &Arc<Self>, el: Element) {
        match Stanza::parse(el) {
            Ok(s) => self.route(s),
            Err(e) => {
                tracing::warn!(error = ?e, "dropping an unroutable stanza built by the server")
            }
        }
    }

    /// Send an error reply for a stanza, unless it is itself an error
    /// (RFC 6120 §8.3.1: never answer an error with an error).
    pub fn bounce(self: &Arc<Self>, stanza: &Stanza, err: StanzaError) {
        if stanza.is_error() || stanza.from.is_none() {
            return;
        }
        if stanza.kind == roost_proto::StanzaKind::Iq && !stanza.is_iq_request() {
            return;
        }
        self.route_element(err.reply_to(&stanza.el));
    }
}

/// Build the response to an IQ request from a handler's result.
pub fn iq_reply(request: &Element, result: IqResult) -> Element {
    match result {
        Ok(payload) => {
            let mut r = Element::bare("iq", ns::CLIENT)
                .attr_set("type", "result")
                .attr_opt("id", request.attr("id"))
                .attr_opt("to", request.attr("from"))
                .attr_opt("from", request.attr("to"));
            if let Some(p) = payload {
                r.append_child(p);
            }
            r
        }
        Err(e) => e.reply_to(request),
    }
}

/// The current time as an XEP-0082 timestamp.
pub fn now_stamp() -> String {
    roost_proto::datetime::to_xep82(std::time::SystemTime::now())
}

/// Resolves once shutdown has been requested (the `watch` guard is not
/// `Send`, so it must not live across an await inside `select!`).
pub async fn until_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await.map(|_| ());
}
