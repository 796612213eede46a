//! Start a server from a configuration: open storage, build TLS, bind the
//! listeners, spawn the accept loops. Used by `roost serve` and by tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use roost_core::Server;
use roost_store::{PostgresStore, SqliteStore, Stores};
use tokio::net::TcpListener;

use crate::config::{Config, StorageBackend};
use crate::listen::bind_all;
use crate::modules;

/// A started server and the addresses it really listens on (the first of
/// each listener key's list).
pub struct Running {
    pub server: Arc<Server>,
    pub c2s: Option<SocketAddr>,
    pub c2s_tls: Option<SocketAddr>,
    /// Web clients (RFC 7395, XEP-0156), plain and TLS.
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// Federation (when on), STARTTLS and direct TLS.
    pub s2s: Option<SocketAddr>,
    pub s2s_tls: Option<SocketAddr>,
    /// External components (XEP-0114), when any are configured.
    pub component: Option<SocketAddr>,
    /// SOCKS5 bytestreams proxy (XEP-0065), when on.
    pub proxy65: Option<SocketAddr>,
}

impl Running {
    /// Close every stream with `system-shutdown` and wait for sessions.
    pub async fn stop(&self) {
        self.server.shutdown(Duration::from_secs(5)).await;
        if let Some(cluster) = self.server.cluster.get() {
            cluster.leave().await;
        }
    }
}

/// The stores of the configured backend (`[storage]`), schema brought up
/// to date.
pub async fn open_stores(cfg: &Config) -> anyhow::Result<Stores> {
    match (cfg.storage.backend, &cfg.storage.url) {
        (StorageBackend::Postgres, Some(url)) => {
            let store = PostgresStore::open(url, cfg.storage.pool_size)
                .await
                .with_context(|| {
                    format!(
                        "opening PostgreSQL at {}",
                        roost_store::postgres::redact_url(url)
                    )
                })?;
            Ok(Stores::from_backend(Arc::new(store)))
        }
        (StorageBackend::Postgres, None) => {
            anyhow::bail!("storage.url: backend = \"postgres\" needs the database's URL")
        }
        (StorageBackend::Sqlite, _) => {
            let store = SqliteStore::open(&cfg.database_path())
                .await
                .with_context(|| format!("opening {}", cfg.database_path().display()))?;
            Ok(Stores::from_backend(Arc::new(store)))
        }
    }
}

pub async fn start(cfg: &Config) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data_dir {}", cfg.data_dir.display()))?;
    let stores = open_stores(cfg).await?;
    // Read once: c2s and federation present the same certificate.
    let (certs, key) = roost_core::tls::identity(
        cfg.tls.cert.as_deref(),
        cfg.tls.key.as_deref(),
        &cfg.domain,
        &cfg.data_dir,
    )
    .context("tls")?;
    let tls =
        roost_core::tls::client_server_config(certs.clone(), key.clone_key()).context("tls")?;
    // One PEP service per server, shared by the modules that write PEP
    // nodes and by the bookmark bridge of account-based MUC joining.
    let pep = roost_features::pep::PepService::new(pep_limits(&cfg.limits));
    let server = Server::new(cfg.core(), stores, modules::all(cfg, &pep), tls)?;
    server
        .disabled
        .load(&server.stores, &cfg.domain)
        .await
        .context("reading the disabled accounts")?;
    server
        .avatars
        .load(&server.stores)
        .await
        .context("reading the avatar hashes")?;
    if let Some(hash) = certs
        .first()
        .and_then(|c| roost_core::c2s::channel_binding::server_end_point(c))
    {
        let _ = server.tls_end_point.set(hash);
    }
    if cfg.fast.enabled {
        let key = if cfg.cluster.enabled {
            // Tokens issued by one node are used at another.
            let k = roost_core::cluster::secrets::shared(&server.stores, &cfg.domain, "fast")
                .await
                .context("the cluster's FAST key")?;
            roost_core::c2s::fast::FastKey::from_bytes(k)
        } else {
            roost_core::c2s::fast::FastKey::load_or_create(&cfg.data_dir)
                .context("data_dir/fast.key (XEP-0484 tokens)")?
        };
        let _ = server.fast_key.set(key);
    }
    let federating = server.config.federates();
    if federating {
        let s2s_tls = roost_core::s2s::certs::S2sTls::new(certs, key, cfg.s2s.ca_file.as_deref())
            .context("s2s.ca_file")?;
        let s2s = if cfg.cluster.enabled {
            // A peer may check our dialback key at any node.
            let secret =
                roost_core::cluster::secrets::shared(&server.stores, &cfg.domain, "dialback")
                    .await
                    .context("the cluster's dialback secret")?;
            roost_core::s2s::S2s::with_secret(cfg.s2s.clone(), s2s_tls, &secret)
        } else {
            roost_core::s2s::S2s::new(cfg.s2s.clone(), s2s_tls)
        };
        let _ = server.s2s.set(Arc::new(s2s));
    }
    if cfg.muc.enabled {
        let sole = !cfg.cluster.enabled;
        let muc =
            roost_muc::MucService::open_with(cfg.muc.clone(), &cfg.domain, &server.stores, sole)
                .await
                .context("opening the MUC service")?;
        tracing::info!(domain = %muc.domain(), "MUC service (XEP-0045)");
        let domain = muc.domain().to_string();
        server.router.add_service(&domain, muc);
    }
    if cfg.pubsub.enabled {
        let pubsub = roost_pubsub::PubsubService::open(
            cfg.pubsub.clone(),
            &cfg.domain,
            &cfg.admins,
            &server.stores,
        )
        .map_err(anyhow::Error::msg)
        .context("opening the pubsub service")?;
        tracing::info!(domain = %pubsub.domain(), "publish-subscribe service (XEP-0060)");
        let domain = pubsub.domain().to_string();
        server.router.add_service(&domain, pubsub);
    }
    let components: roost_core::component::Components = cfg
        .component
        .iter()
        .map(|c| (c.domain.clone(), roost_core::component::Component::new(c)))
        .collect();
    for (domain, component) in &components {
        tracing::info!(%domain, "external component (XEP-0114)");
        server.router.add_service(domain, component.clone());
    }
    if cfg.upload.enabled {
        let uploads =
            roost_core::upload::Uploads::open(cfg.upload.clone(), &cfg.domain, &cfg.data_dir)
                .context("data_dir/uploads")?;
        tracing::info!(domain = %uploads.domain, "HTTP File Upload (XEP-0363)");
        server.router.add_service(
            &uploads.domain.clone(),
            Arc::new(roost_core::upload::UploadService {
                uploads: uploads.clone(),
            }),
        );
        roost_core::upload::spawn_expiry(&server, &uploads);
        let _ = server.uploads.set(uploads);
    }
    let proxy65 = start_proxy65(cfg, &server).await?;
    if cfg.cluster.enabled {
        // Before the listeners: the first clients must find the others.
        let cluster = roost_core::cluster::Cluster::start(&server)
            .await
            .context("joining the cluster")?;
        tracing::info!(node = %cluster.node, nats = %cfg.cluster.nats, "cluster node");
    }
    // After the MUC service is up: bookmarked rooms are joined at start.
    crate::bookmark_rooms::spawn(&server, &pep);
    crate::counters_log::spawn(&server);
    let c2s = bind_all("c2s", &cfg.listen.c2s).await?;
    let c2s_tls = bind_all("c2s_tls", &cfg.listen.c2s_tls).await?;
    let http = bind_all("http", &cfg.listen.http).await?;
    let https = bind_all("https", &cfg.listen.https).await?;
    let (s2s, s2s_tls) = if federating {
        (
            bind_all("s2s", &cfg.listen.s2s).await?,
            bind_all("s2s_tls", &cfg.listen.s2s_tls).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let component = if components.is_empty() {
        Vec::new()
    } else {
        bind_all("component", &cfg.listen.component).await?
    };
    let first = |ls: &[TcpListener]| ls.first().and_then(|l| l.local_addr().ok());
    let running = Running {
        server: server.clone(),
        c2s: first(&c2s),
        c2s_tls: first(&c2s_tls),
        http: first(&http),
        https: first(&https),
        s2s: first(&s2s),
        s2s_tls: first(&s2s_tls),
        component: first(&component),
        proxy65,
    };
    let components = Arc::new(components);
    for l in component {
        tracing::info!(addr = ?l.local_addr().ok(), "listening for external components");
        tokio::spawn(roost_core::listener::serve_component(
            server.clone(),
            l,
            components.clone(),
        ));
    }
    for (listeners, direct_tls) in [(s2s, false), (s2s_tls, true)] {
        for l in listeners {
            let addr = l.local_addr().ok();
            tracing::info!(?addr, direct_tls, "listening for servers (federation)");
            tokio::spawn(roost_core::listener::serve_s2s(
                server.clone(),
                l,
                direct_tls,
            ));
        }
    }
    for (listeners, direct_tls) in [(c2s, false), (c2s_tls, true)] {
        for l in listeners {
            let addr = l.local_addr().ok();
            if direct_tls {
                tracing::info!(?addr, "listening for clients (direct TLS)");
            } else {
                tracing::info!(?addr, "listening for clients (STARTTLS)");
            }
            tokio::spawn(roost_core::listener::serve_c2s(
                server.clone(),
                l,
                direct_tls,
            ));
        }
    }
    for (listeners, tls) in [(http, None), (https, Some(&server.tls))] {
        for l in listeners {
            let Ok(local) = l.local_addr() else {
                continue;
            };
            // The HTTPS listener's TLS has no use for the exporter capture
            // of the client streams' config (c2s/tls_exporter.rs).
            let https_tls = tls.map(roost_core::tls::without_exporter_capture);
            let endpoint =
                roost_core::http::HttpEndpoint::new(cfg.http.clone(), https_tls.as_ref(), local);
            tracing::info!(addr = %local, tls = endpoint.is_tls(), "listening for web clients (WebSocket at {})", roost_core::http::WEBSOCKET_PATH);
            tokio::spawn(roost_core::listener::serve_http(
                server.clone(),
                l,
                Arc::new(endpoint),
            ));
        }
    }
    spawn_archive_retention(&server);
    Ok(running)
}

/// XEP-0065: bind `[listen] proxy65`, register the proxy on its domain
/// (announcing the first bound address) and accept SOCKS5 connections.
/// Returns the first bound address.
async fn start_proxy65(cfg: &Config, server: &Arc<Server>) -> anyhow::Result<Option<SocketAddr>> {
    if !cfg.proxy65.enabled {
        return Ok(None);
    }
    let listeners = bind_all("proxy65", &cfg.listen.proxy65).await?;
    let Some(bound) = listeners.first().and_then(|l| l.local_addr().ok()) else {
        tracing::warn!("[proxy65] is enabled but [listen] proxy65 is empty: no proxy");
        return Ok(None);
    };
    let proxy = roost_core::proxy65::Proxy65::new(cfg.proxy65.clone(), server, bound);
    tracing::info!(domain = %proxy.domain, "SOCKS5 Bytestreams proxy (XEP-0065)");
    server
        .router
        .add_service(&proxy.domain.clone(), proxy.clone());
    for l in listeners {
        tracing::info!(addr = ?l.local_addr().ok(), "listening for SOCKS5 bytestreams");
        tokio::spawn(roost_core::listener::serve_proxy65(
            server.clone(),
            l,
            proxy.clone(),
        ));
    }
    let _ = server.proxy65.set(proxy);
    Ok(Some(bound))
}

/// XEP-0313 retention: hourly, delete what is older than `retention_days`.
fn spawn_archive_retention(server: &Arc<Server>) {
    let days = server.config.archive.retention_days;
    if days == 0 {
        return;
    }
    let server = server.clone();
    tokio::spawn(async move {
        let mut shutdown = server.shutdown_signal();
        loop {
            let cutoff = std::time::SystemTime::now()
                .checked_sub(Duration::from_secs(days * 86_400))
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            match server.stores.archive.purge_archive_before(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "archive retention"),
                Err(e) => tracing::error!(error = %e, "archive retention failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = roost_core::server::until_shutdown(&mut shutdown) => return,
            }
        }
    });
}

/// PEP's limits from `[limits]`.
pub fn pep_limits(l: &roost_core::config::LimitsConfig) -> roost_features::pep::Limits {
    roost_features::pep::Limits {
        max_item_bytes: l.max_pep_item_size,
        max_avatar_bytes: l.max_pep_avatar_size,
        max_items: l.max_pep_items,
        max_nodes: l.max_pep_nodes,
        ..roost_features::pep::Limits::default()
    }
}
