//! The TOML configuration file (see `roost.example.toml`): one section per
//! area, unknown keys rejected with their path, defaults embedded so that
//! `roost serve` runs with no file at all.

use std::path::{Path, PathBuf};

use roost_core::config::{
    AccountMucConfig, ArchiveConfig, ClusterConfig, ComponentConfig, CoreConfig, FastConfig,
    LimitsConfig, PushConfig, RegistrationConfig, S2sConfig, StreamManagementConfig, TlsConfig,
};
use serde::{Deserialize, Serialize};

pub use crate::listen::Addresses;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The virtual host served.
    pub domain: String,
    /// Accounts allowed the service administration commands (XEP-0133).
    pub admins: Vec<String>,
    /// SQLite database and generated certificate live here.
    pub data_dir: PathBuf,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace` or a tracing
    /// directive); `RUST_LOG` wins when set.
    pub log: String,
    pub listen: ListenConfig,
    pub tls: TlsConfig,
    pub registration: RegistrationConfig,
    pub limits: LimitsConfig,
    pub stream_management: StreamManagementConfig,
    pub archive: ArchiveConfig,
    pub account_muc: AccountMucConfig,
    /// XEP-0045 Multi-User Chat service.
    pub muc: roost_muc::MucConfig,
    /// Web clients: WebSocket origins and HTTP limits.
    pub http: roost_core::http::HttpConfig,
    /// Server-to-server federation.
    pub s2s: S2sConfig,
    /// Push notifications (XEP-0357).
    pub push: PushConfig,
    /// Token logins (XEP-0484 FAST).
    pub fast: FastConfig,
    /// STUN/TURN servers for calls (XEP-0215).
    pub extdisco: roost_features::extdisco::ExtdiscoConfig,
    /// Contact addresses in the server's disco (XEP-0157).
    pub contact: roost_features::contact_info::ContactConfig,
    /// HTTP File Upload (XEP-0363).
    pub upload: roost_core::upload::UploadConfig,
    /// SOCKS5 Bytestreams proxy (XEP-0065).
    pub proxy65: roost_core::proxy65::Proxy65Config,
    /// Publish-subscribe service (XEP-0060).
    pub pubsub: roost_pubsub::PubsubConfig,
    /// External components (XEP-0114), `[[component]]` tables.
    pub component: Vec<ComponentConfig>,
    /// Where accounts, rosters, archives, rooms and nodes are stored.
    pub storage: StorageConfig,
    /// Several nodes for one domain, over NATS (`[cluster]`).
    pub cluster: ClusterConfig,
}

/// The storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Embedded: `data_dir/roost.sqlite`, nothing to set up.
    #[default]
    Sqlite,
    /// A PostgreSQL database at `url`.
    Postgres,
}

/// `[storage]`: SQLite in `data_dir` by default, or PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// PostgreSQL connection URL (`postgres://user:password@host:port/db`
    /// or libpq's `host=... dbname=...`); only with `backend = "postgres"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PostgreSQL connections at most.
    pub pool_size: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Sqlite,
            url: None,
            pool_size: roost_store::postgres::DEFAULT_POOL_SIZE,
        }
    }
}

impl StorageConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        match (self.backend, &self.url) {
            (StorageBackend::Postgres, None) => Err(ConfigError::Invalid {
                key: "storage.url",
                message: "backend = \"postgres\" needs the database's URL".into(),
            }),
            (StorageBackend::Postgres, Some(url)) => {
                roost_store::postgres::check_url(url).map_err(|message| ConfigError::Invalid {
                    key: "storage.url",
                    message,
                })
            }
            (StorageBackend::Sqlite, Some(_)) => Err(ConfigError::Invalid {
                key: "storage.url",
                message: "only used with backend = \"postgres\" (SQLite lives in data_dir)".into(),
            }),
            (StorageBackend::Sqlite, None) => Ok(()),
        }?;
        if !(1..=1000).contains(&self.pool_size) {
            return Err(ConfigError::Invalid {
                key: "storage.pool_size",
                message: format!("{} is not between 1 and 1000", self.pool_size),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// STARTTLS client addresses (one or a list); empty disables them.
    pub c2s: Addresses,
    /// Direct TLS client addresses (XEP-0368); empty disables them.
    pub c2s_tls: Addresses,
    /// HTTP for web clients: XMPP over WebSocket (RFC 7395) at
    /// /xmpp-websocket and XEP-0156 host-meta; empty disables it.
    pub http: Addresses,
    /// The same over TLS (the certificate of `[tls]`); empty disables it.
    pub https: Addresses,
    /// Server-to-server streams with STARTTLS (RFC 6120); empty disables
    /// incoming federation.
    pub s2s: Addresses,
    /// Server-to-server streams with direct TLS (XEP-0368, ALPN
    /// `xmpp-server`); empty disables them.
    pub s2s_tls: Addresses,
    /// External components (XEP-0114); used only when `[[component]]`
    /// tables exist. Keep it on loopback or a private network: the
    /// protocol has no TLS.
    pub component: Addresses,
    /// SOCKS5 connections to the bytestreams proxy (XEP-0065); used only
    /// when `[proxy65]` is enabled. Clients connect here directly, so
    /// a public server lists a public address.
    pub proxy65: Addresses,
}

impl Default for ListenConfig {
    /// Both loopbacks: clients that resolve `localhost` to `::1` connect too.
    fn default() -> Self {
        ListenConfig {
            c2s: ["127.0.0.1:5222", "[::1]:5222"].into(),
            c2s_tls: ["127.0.0.1:5223", "[::1]:5223"].into(),
            http: ["127.0.0.1:5280", "[::1]:5280"].into(),
            https: ["127.0.0.1:5281", "[::1]:5281"].into(),
            // Used only when federation is on (not for `localhost`).
            s2s: ["0.0.0.0:5269", "[::]:5269"].into(),
            s2s_tls: Addresses::default(),
            component: "127.0.0.1:5347".into(),
            proxy65: ["127.0.0.1:5000", "[::1]:5000"].into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domain: "localhost".into(),
            admins: Vec::new(),
            data_dir: PathBuf::from("./roost-data"),
            log: "info".into(),
            listen: ListenConfig::default(),
            tls: TlsConfig::default(),
            registration: RegistrationConfig::default(),
            limits: LimitsConfig::default(),
            stream_management: StreamManagementConfig::default(),
            archive: ArchiveConfig::default(),
            account_muc: AccountMucConfig::default(),
            muc: roost_muc::MucConfig::default(),
            http: roost_core::http::HttpConfig::default(),
            s2s: S2sConfig::default(),
            push: PushConfig::default(),
            fast: FastConfig::default(),
            extdisco: Default::default(),
            contact: Default::default(),
            upload: Default::default(),
            proxy65: Default::default(),
            pubsub: Default::default(),
            component: Vec::new(),
            storage: StorageConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Read a file, or the embedded defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.into(),
                    source,
                })?;
                Config::parse(&text).map_err(|message| ConfigError::Parse {
                    path: p.into(),
                    message,
                })?
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse TOML; the message names the offending key.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_string())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if jid::BareJid::new(&self.domain)
            .ok()
            .is_none_or(|j| j.node().is_some())
        {
            return Err(ConfigError::Invalid {
                key: "domain",
                message: format!("{:?} is not a valid domain", self.domain),
            });
        }
        for (key, value) in [
            ("listen.c2s", &self.listen.c2s),
            ("listen.c2s_tls", &self.listen.c2s_tls),
            ("listen.http", &self.listen.http),
            ("listen.https", &self.listen.https),
            ("listen.s2s", &self.listen.s2s),
            ("listen.s2s_tls", &self.listen.s2s_tls),
            ("listen.component", &self.listen.component),
            ("listen.proxy65", &self.listen.proxy65),
        ] {
            if let Some(bad) = value.invalid() {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("{bad:?} is not an address:port"),
                });
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid {
                key: "tls",
                message: "cert and key must be given together".into(),
            });
        }
        let l = &self.limits;
        for (key, ok) in [
            ("limits.max_stanza_size", l.max_stanza_size >= 1024),
            ("limits.auth_timeout", l.auth_timeout >= 1),
            ("limits.max_connections", l.max_connections >= 1),
            ("limits.session_queue", l.session_queue >= 16),
            ("limits.idle_timeout", l.idle_timeout >= 1),
            ("limits.handshake_timeout", l.handshake_timeout >= 1),
            ("limits.ipv6_prefix", (1..=128).contains(&l.ipv6_prefix)),
            ("limits.burst_seconds", l.burst_seconds >= 1),
            (
                "limits.bytes_per_second",
                l.bytes_per_second == 0 || l.bytes_per_second >= 1024,
            ),
            (
                "limits.session_queue_bytes",
                l.session_queue_bytes >= 64 * 1024,
            ),
            (
                "limits.queued_bytes_total",
                l.queued_bytes_total >= l.session_queue_bytes,
            ),
            ("limits.max_resources", l.max_resources >= 1),
            ("limits.max_roster_items", l.max_roster_items >= 1),
            ("limits.max_mam_page", l.max_mam_page >= 1),
            ("limits.max_pep_nodes", l.max_pep_nodes >= 1),
            ("limits.max_pep_items", l.max_pep_items >= 1),
            ("limits.max_pep_item_size", l.max_pep_item_size >= 1024),
            ("limits.max_pep_avatar_size", l.max_pep_avatar_size >= 1024),
        ] {
            if !ok {
                return Err(ConfigError::Invalid {
                    key,
                    message: "value too small".into(),
                });
            }
        }
        if let Some(bad) = l
            .exempt
            .iter()
            .find(|e| roost_core::limits::per_address::parse_net(e).is_none())
        {
            return Err(ConfigError::Invalid {
                key: "limits.exempt",
                message: format!("{bad:?} is not an address or address range"),
            });
        }
        self.validate_components()?;
        self.storage.validate()?;
        self.validate_cluster()?;
        for a in &self.admins {
            if jid::BareJid::new(a).ok().is_none_or(|j| j.node().is_none()) {
                return Err(ConfigError::Invalid {
                    key: "admins",
                    message: format!("{a:?} is not an account's JID"),
                });
            }
        }
        self.extdisco
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        self.proxy65
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        self.muc
            .validate(&self.domain)
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        self.pubsub
            .validate(&self.domain)
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        if self.pubsub.enabled
            && self.muc.enabled
            && self.pubsub.service_domain(&self.domain) == self.muc.service_domain(&self.domain)
        {
            return Err(ConfigError::Invalid {
                key: "pubsub.domain",
                message: "must differ from the MUC service's domain".into(),
            });
        }
        self.http
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        for (domain, addr) in &self.s2s.hosts {
            if jid::BareJid::new(domain)
                .ok()
                .is_none_or(|j| j.node().is_some())
                || addr.parse::<std::net::SocketAddr>().is_err()
            {
                return Err(ConfigError::Invalid {
                    key: "s2s.hosts",
                    message: format!("{domain:?} = {addr:?} is not a domain and an address:port"),
                });
            }
        }
        if let Some(dns) = &self.s2s.dns_server {
            if dns.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    key: "s2s.dns_server",
                    message: format!("{dns:?} is not an address:port"),
                });
            }
        }
        for (key, ok) in [
            ("s2s.connect_timeout", self.s2s.connect_timeout >= 1),
            ("s2s.idle_timeout", self.s2s.idle_timeout >= 1),
            ("s2s.max_queue", self.s2s.max_queue >= 1),
            ("s2s.max_incoming", self.s2s.max_incoming >= 1),
            ("s2s.max_outgoing", self.s2s.max_outgoing >= 1),
            ("fast.token_lifetime", self.fast.token_lifetime >= 60),
            ("fast.max_clients", self.fast.max_clients >= 1),
        ] {
            if !ok {
                return Err(ConfigError::Invalid {
                    key,
                    message: "value too small".into(),
                });
            }
        }
        Ok(())
    }

    /// Each component: a domain of its own (not the server's, not the MUC
    /// or pubsub service's, not twice) and a secret.
    /// A cluster's nodes share their data: PostgreSQL, never a node's own
    /// SQLite file; and each needs a name the others can address.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        if !c.enabled {
            return Ok(());
        }
        let named = !c.node.is_empty()
            && c.node.len() <= 64
            && c.node
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !named {
            return Err(ConfigError::Invalid {
                key: "cluster.node",
                message: "a cluster node needs a name of letters, digits, '-' or '_' (at most 64)"
                    .into(),
            });
        }
        if c.nats.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "cluster.nats",
                message: "the NATS server's URL is needed".into(),
            });
        }
        if self.storage.backend != StorageBackend::Postgres {
            return Err(ConfigError::Invalid {
                key: "storage.backend",
                message: "a cluster's nodes share one database: set backend = \"postgres\"".into(),
            });
        }
        if c.heartbeat_ms == 0 || c.lease_ms < 2 * c.heartbeat_ms {
            return Err(ConfigError::Invalid {
                key: "cluster.lease_ms",
                message: "must be at least two heartbeats (heartbeat_ms > 0)".into(),
            });
        }
        Ok(())
    }

    fn validate_components(&self) -> Result<(), ConfigError> {
        let muc = self.muc.service_domain(&self.domain);
        let proxy65 = self.proxy65.service_domain(&self.domain);
        let pubsub = self.pubsub.service_domain(&self.domain);
        let mut seen = std::collections::HashSet::new();
        for c in &self.component {
            let valid = jid::BareJid::new(&c.domain)
                .ok()
                .is_some_and(|j| j.node().is_none());
            let message = if !valid {
                format!("{:?} is not a valid domain", c.domain)
            } else if c.domain == self.domain
                || (self.muc.enabled && c.domain == muc)
                || (self.proxy65.enabled && c.domain == proxy65)
                || (self.pubsub.enabled && c.domain == pubsub)
            {
                format!("{:?} is served by Roost itself", c.domain)
            } else if !seen.insert(c.domain.as_str()) {
                format!("{:?} is configured twice", c.domain)
            } else if c.secret.is_empty() {
                format!("{:?} has no secret", c.domain)
            } else {
                continue;
            };
            return Err(ConfigError::Invalid {
                key: "component",
                message,
            });
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("roost.sqlite")
    }

    pub fn core(&self) -> CoreConfig {
        CoreConfig {
            domain: self.domain.clone(),
            data_dir: self.data_dir.clone(),
            tls: self.tls.clone(),
            registration: self.registration.clone(),
            limits: self.limits.clone(),
            stream_management: self.stream_management.clone(),
            archive: self.archive.clone(),
            account_muc: self.account_muc.clone(),
            s2s: self.s2s.clone(),
            push: self.push.clone(),
            fast: self.fast.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// The effective configuration as TOML, for `roost check-config`.
    pub fn to_toml(&self) -> String {
        // Print derived values as the server will use them.
        let mut effective = self.clone();
        effective.muc.domain = Some(self.muc.service_domain(&self.domain));
        effective.pubsub.domain = Some(self.pubsub.service_domain(&self.domain));
        // The password, if the URL has one, stays out of the output.
        effective.storage.url = self
            .storage
            .url
            .as_deref()
            .map(roost_store::postgres::redact_url);
        toml::to_string_pretty(&effective).unwrap_or_else(|e| format!("# cannot print: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_valid_and_matches_the_defaults() {
        let text = include_str!("../../../roost.example.toml");
        let cfg = Config::parse(text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.domain, "localhost");
        assert_eq!(cfg.listen.c2s, Config::default().listen.c2s);
        assert_eq!(cfg.listen.c2s_tls, Config::default().listen.c2s_tls);
        assert_eq!(cfg.listen.s2s, Config::default().listen.s2s);
        assert_eq!(cfg.listen.s2s_tls, Config::default().listen.s2s_tls);
        let d = S2sConfig::default();
        assert_eq!(
            (
                cfg.s2s.enabled,
                cfg.s2s.require_encryption,
                cfg.s2s.authentication
            ),
            (d.enabled, d.require_encryption, d.authentication)
        );
        assert_eq!(
            (
                cfg.s2s.connect_timeout,
                cfg.s2s.idle_timeout,
                cfg.s2s.max_queue,
                cfg.s2s.max_incoming
            ),
            (
                d.connect_timeout,
                d.idle_timeout,
                d.max_queue,
                d.max_incoming
            )
        );
        assert_eq!(cfg.listen.http, Config::default().listen.http);
        assert_eq!(cfg.listen.https, Config::default().listen.https);
        assert_eq!(cfg.listen.proxy65, Config::default().listen.proxy65);
        assert_eq!(cfg.proxy65, Config::default().proxy65);
        assert_eq!(
            cfg.http.allowed_origins,
            Config::default().http.allowed_origins
        );
        let (bosh, default_bosh) = (&cfg.http.bosh, Config::default().http.bosh);
        assert_eq!(
            (
                bosh.enabled,
                bosh.max_wait,
                bosh.max_inactivity,
                bosh.max_hold,
                bosh.max_requests
            ),
            (
                default_bosh.enabled,
                default_bosh.max_wait,
                default_bosh.max_inactivity,
                default_bosh.max_hold,
                default_bosh.max_requests
            )
        );
        assert!(!cfg.registration.open);
        assert_eq!(cfg.storage, StorageConfig::default());
    }

    #[test]
    fn a_cluster_needs_postgres_a_node_name_and_sane_leases() {
        let base =
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://roost@127.0.0.1/roost\"\n";
        let ok =
            Config::parse(&format!("{base}[cluster]\nenabled = true\nnode = \"n1\"\n")).unwrap();
        ok.validate().unwrap();
        assert_eq!(ok.cluster.lease_ms, 4000);
        let on_sqlite = Config::parse("[cluster]\nenabled = true\nnode = \"n1\"\n").unwrap();
        assert!(on_sqlite
            .validate()
            .unwrap_err()
            .to_string()
            .contains("storage.backend"));
        let unnamed = Config::parse(&format!("{base}[cluster]\nenabled = true\n")).unwrap();
        assert!(unnamed
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cluster.node"));
        let bad_name = Config::parse(&format!(
            "{base}[cluster]\nenabled = true\nnode = \"n 1\"\n"
        ))
        .unwrap();
        assert!(bad_name.validate().is_err());
        let short_lease = Config::parse(&format!(
            "{base}[cluster]\nenabled = true\nnode = \"n1\"\nheartbeat_ms = 1000\nlease_ms = 1500\n"
        ))
        .unwrap();
        assert!(short_lease
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cluster.lease_ms"));
        assert!(Config::parse("[cluster]\nnodes = 3\n").is_err());
    }

    #[test]
    fn the_muc_section_matches_the_defaults_and_is_printed_in_full() {
        let text = include_str!("../../../roost.example.toml");
        let cfg = Config::parse(text).unwrap();
        assert_eq!(cfg.muc, roost_muc::MucConfig::default());
        let printed = Config::default().to_toml();
        assert!(printed.contains("[muc]"), "{printed}");
        assert!(
            printed.contains("domain = \"conference.localhost\""),
            "{printed}"
        );
        let back = Config::parse(&printed).unwrap();
        assert_eq!(back.muc.service_domain("localhost"), "conference.localhost");
    }

    #[test]
    fn the_pubsub_section_defaults_and_names_its_bad_keys() {
        let cfg = Config::default();
        assert_eq!(cfg.pubsub, roost_pubsub::PubsubConfig::default());
        assert!(cfg.to_toml().contains("domain = \"pubsub.localhost\""));
        let bad =
            Config::parse("[pubsub]\ncreators = \"admins\"\ndomain = \"conference.localhost\"\n")
                .unwrap();
        assert_eq!(bad.pubsub.creators, roost_pubsub::Creators::Admins);
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.starts_with("pubsub.domain"), "{err}");
        assert!(Config::parse("[pubsub]\nmax_nodes = 3\n").is_err());
    }

    #[test]
    fn bad_muc_values_name_their_key() {
        let err = Config::parse(
            "[muc]
max_rooms = 'x'
",
        )
        .unwrap_err();
        assert!(err.contains("max_rooms"), "{err}");
        let err = Config::parse(
            "[muc]
max_romos = 1
",
        )
        .unwrap_err();
        assert!(err.contains("max_romos"), "{err}");
        let mut c = Config::default();
        c.muc.domain = Some("localhost".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("muc.domain"));
        let mut c = Config::default();
        c.muc.max_occupants = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("muc.max_occupants"));
    }

    #[test]
    fn the_federation_keys_of_the_issue_parse() {
        let cfg = Config::parse(
            "domain = 'example.org'
[listen]
s2s = '0.0.0.0:5269'
s2s_tls = '0.0.0.0:5270'
[s2s]
enabled = true
require_encryption = true
authentication = 'certificate'
ca_file = '/path/ca.pem'
hosts = { 'prosody.test' = '127.0.0.3:5269' }
dns_server = '127.0.0.53:53'
",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.s2s.hosts["prosody.test"], "127.0.0.3:5269");
        assert!(cfg.core().federates());
        let local = Config::default();
        assert!(!local.core().federates(), "localhost does not federate");
        let mut bad = cfg.clone();
        bad.s2s.hosts.insert("x.test".into(), "nowhere".into());
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("s2s.hosts"));
        assert!(Config::parse("[s2s]\nauthentication = 'password'\n").is_err());
    }

    #[test]
    fn storage_defaults_to_sqlite_and_postgres_needs_a_url() {
        let d = Config::default();
        assert_eq!(d.storage.backend, StorageBackend::Sqlite);
        assert_eq!(d.storage.pool_size, 16);
        assert!(d.to_toml().contains("[storage]\nbackend = \"sqlite\""));
        let cfg = Config::parse(
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://roost:s3cret@127.0.0.1/roost\"\npool_size = 4\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.storage.backend, StorageBackend::Postgres);
        assert_eq!(cfg.storage.pool_size, 4);
        let printed = cfg.to_toml();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("postgres://roost:***@127.0.0.1/roost"),
            "{printed}"
        );
        for (bad, key) in [
            ("[storage]\nbackend = \"postgres\"\n", "storage.url"),
            ("[storage]\nurl = \"postgres://h/db\"\n", "storage.url"),
            (
                "[storage]\nbackend = \"postgres\"\nurl = \"mysql://h/db\"\n",
                "storage.url",
            ),
            (
                "[storage]\nbackend = \"postgres\"\nurl = \"postgres://h/db\"\npool_size = 0\n",
                "storage.pool_size",
            ),
        ] {
            let e = Config::parse(bad)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(key), "{bad}: {e}");
        }
        assert!(Config::parse("[storage]\nbackend = \"mysql\"\n").is_err());
        let e = Config::parse("[storage]\npool = 3\n").unwrap_err();
        assert!(e.contains("pool"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("domain = 'x'\n[listen]\nc2ss = '1'\n").unwrap_err();
        assert!(err.contains("c2ss"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = Config::default();
        c.listen.c2s = "nope".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("listen.c2s"));
        let mut c = Config::default();
        c.listen.https = ["127.0.0.1:5281", "localhost"].into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("listen.https"));
        let mut c = Config::default();
        c.http.allowed_origins = vec!["example.org".into()];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("http.allowed_origins"));
        let c = Config {
            domain: "a@b".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().starts_with("domain"));
    }

    #[test]
    fn components_need_a_domain_of_their_own_and_a_secret() {
        let parse = |tables: &str| {
            Config::parse(&format!("domain = \"example.org\"\n{tables}"))
                .unwrap()
                .validate()
        };
        let ok = parse("[[component]]\ndomain = \"push.example.org\"\nsecret = \"s\"\n");
        assert!(ok.is_ok(), "{ok:?}");
        for bad in [
            "[[component]]\ndomain = \"example.org\"\nsecret = \"s\"\n",
            "[[component]]\ndomain = \"conference.example.org\"\nsecret = \"s\"\n",
            "[[component]]\ndomain = \"proxy.example.org\"\nsecret = \"s\"\n",
            "[[component]]\ndomain = \"push.example.org\"\nsecret = \"\"\n",
            "[[component]]\ndomain = \"a@push.example.org\"\nsecret = \"s\"\n",
            "[[component]]\ndomain = \"p.example.org\"\nsecret = \"s\"\n[[component]]\ndomain = \"p.example.org\"\nsecret = \"t\"\n",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("component"), "{bad}: {e}");
        }
    }
}
