//! Typed configuration of the kernel. The server crate reads the TOML file
//! into these (serde, unknown keys rejected) and fills in the defaults.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; absent: a self-signed one is generated once.
    pub cert: Option<PathBuf>,
    /// PEM private key matching `cert`.
    pub key: Option<PathBuf>,
    /// Refuse authentication on streams that have not negotiated TLS.
    pub required: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            required: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// XEP-0077 in-band registration for everyone.
    pub open: bool,
    /// In-band registration for clients connecting from loopback addresses
    /// even when `open` is false. Default: on only for the `localhost` domain,
    /// so that a newcomer can create accounts from a client on the same
    /// machine and a public server behind a local proxy is not opened.
    pub loopback: Option<bool>,
    /// Allow password change by the logged-in user (XEP-0077 §3.3).
    pub allow_password_change: bool,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            open: false,
            loopback: None,
            allow_password_change: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest stanza accepted, in bytes, enforced while parsing.
    pub max_stanza_size: usize,
    /// Seconds an unauthenticated connection may take to authenticate and bind.
    pub auth_timeout: u64,
    /// Open client connections at most; more are refused at accept.
    pub max_connections: usize,
    /// Stanzas queued for one session before it is closed as too slow.
    pub session_queue: usize,
    /// Offline messages kept per account (XEP-0160).
    pub max_offline_messages: usize,
    /// Seconds without any input after which a session is closed.
    pub idle_timeout: u64,
    /// Seconds from connect to a finished TLS handshake (direct TLS and
    /// STARTTLS) and to the first stream header; slow-read attacks end here.
    pub handshake_timeout: u64,
    /// Open connections per client address (IPv6: per `ipv6_prefix`);
    /// 0 for no limit.
    pub max_connections_per_ip: usize,
    /// New connections per second per client address, after a burst of
    /// `connection_burst`; 0 for no limit.
    pub connections_per_second: u32,
    pub connection_burst: u32,
    /// IPv6 addresses count together by this prefix length.
    pub ipv6_prefix: u8,
    /// Address ranges the per-address limits do not apply to (a local
    /// reverse proxy, monitoring).
    pub exempt: Vec<String>,
    /// Stanzas and bytes per second one stream may send, with a burst of
    /// `burst_seconds` of each; beyond, the server reads more slowly. 0
    /// turns a rate off.
    pub stanzas_per_second: u32,
    pub bytes_per_second: u32,
    pub burst_seconds: u32,
    /// Bytes of stanzas queued for one session before it is closed.
    pub session_queue_bytes: usize,
    /// Bytes of stanzas queued for all sessions together; past three
    /// quarters of it, the server stops reading from clients until the
    /// queues drain.
    pub queued_bytes_total: usize,
    /// Sessions (resources) one account may have bound at once.
    pub max_resources: usize,
    /// Items in one roster.
    pub max_roster_items: usize,
    /// Messages one MAM page (XEP-0313 with XEP-0059 `max`) returns at most.
    pub max_mam_page: usize,
    /// PEP (XEP-0163): nodes per account, items per node, bytes per item
    /// (avatar data: `max_pep_avatar_size`).
    pub max_pep_nodes: usize,
    pub max_pep_items: usize,
    pub max_pep_item_size: usize,
    pub max_pep_avatar_size: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_stanza_size: 256 * 1024,
            auth_timeout: 60,
            max_connections: 50_000,
            session_queue: 2048,
            max_offline_messages: 1000,
            idle_timeout: 600,
            handshake_timeout: 15,
            max_connections_per_ip: 100,
            connections_per_second: 10,
            connection_burst: 30,
            ipv6_prefix: 64,
            exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
            stanzas_per_second: 200,
            bytes_per_second: 64 * 1024,
            burst_seconds: 5,
            session_queue_bytes: 8 * 1024 * 1024,
            queued_bytes_total: 512 * 1024 * 1024,
            max_resources: 64,
            max_roster_items: 2000,
            max_mam_page: 250,
            max_pep_nodes: 256,
            max_pep_items: 256,
            max_pep_item_size: 64 * 1024,
            max_pep_avatar_size: 256 * 1024,
        }
    }
}

/// XEP-0198 stream management.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamManagementConfig {
    /// Seconds a session whose connection dropped may be resumed.
    pub resume_timeout: u64,
    /// The same for a session whose device registered for push
    /// notifications (XEP-0357): its phone wakes on a push and resumes.
    pub resume_timeout_push: u64,
    /// Unacknowledged stanzas kept per session before it is closed.
    pub max_unacked: usize,
}

impl Default for StreamManagementConfig {
    fn default() -> Self {
        StreamManagementConfig {
            resume_timeout: 300,
            resume_timeout_push: 72 * 3600,
            max_unacked: 10_000,
        }
    }
}

/// `[cluster]`: several nodes serving one domain over a NATS bus
/// (cluster/mod.rs). Off by default: a single node needs nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub enabled: bool,
    /// This node's name, unique in the cluster (letters, digits, `-`, `_`).
    pub node: String,
    /// The NATS server (or several, comma-separated) the nodes share.
    pub nats: String,
    /// Milliseconds between two heartbeats of a node.
    pub heartbeat_ms: u64,
    /// Milliseconds without a heartbeat after which a node's lease ends:
    /// its sessions are gone and its accounts and rooms move.
    pub lease_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node: String::new(),
            nats: "nats://127.0.0.1:4222".into(),
            heartbeat_ms: 1000,
            lease_ms: 4000,
        }
    }
}

/// XEP-0484 FAST: token logins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FastConfig {
    /// Offer tokens to SASL2 clients.
    pub enabled: bool,
    /// Seconds a token lives; it is replaced when half of that is gone.
    pub token_lifetime: u64,
    /// Clients (devices) with tokens per account at most.
    pub max_clients: usize,
}

impl Default for FastConfig {
    fn default() -> Self {
        FastConfig {
            enabled: true,
            token_lifetime: 30 * 24 * 3600,
            max_clients: 10,
        }
    }
}

/// XEP-0357 push notifications.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Accounts may register app servers.
    pub enabled: bool,
    /// Put the message's text in the push (`last-message-body`); it then
    /// passes through the app server and the phone vendor's service.
    pub include_body: bool,
    /// Put the sender's JID in the push (`last-message-sender`).
    pub include_sender: bool,
    /// Consecutive errors from an app server after which a registration
    /// is dropped.
    pub max_errors: u32,
    /// Seconds between two pushes to the same device at least.
    pub min_interval: u64,
    /// Registrations an account may hold (the oldest goes first).
    pub max_registrations: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            include_body: false,
            include_sender: true,
            max_errors: 3,
            min_interval: 10,
            max_registrations: 10,
        }
    }
}

/// XEP-0313 personal archives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Archive one-to-one messages of every account.
    pub enabled: bool,
    /// Delete archived messages older than this many days; 0 keeps them forever.
    pub retention_days: u64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            retention_days: 0,
        }
    }
}

/// Account-based MUC joining (ACCOUNT-MUC.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountMucConfig {
    /// The account, not each session, is the occupant of the rooms its
    /// sessions join. Off: every session joins rooms on its own (plain XEP-0045).
    pub enabled: bool,
    /// Bookmarks with autojoin keep the account in the room with no session.
    pub persist_bookmarked: bool,
    /// Seconds between XEP-0410 self-pings of every room the account is
    /// in (rule 15); 0 disables them.
    pub self_ping_interval: u64,
}

impl Default for AccountMucConfig {
    fn default() -> Self {
        AccountMucConfig {
            enabled: true,
            persist_bookmarked: true,
            self_ping_interval: 900,
        }
    }
}

/// How a peer server must prove who it is (XEP-0178, XEP-0220).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum S2sAuthentication {
    /// A certificate valid for the peer's domain (SASL EXTERNAL), or
    /// Server Dialback where the certificate does not verify.
    CertificateOrDialback,
    /// A certificate valid for the peer's domain, nothing else.
    Certificate,
}

/// Server-to-server federation (RFC 6120, XEP-0178, XEP-0220, XEP-0368).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S2sConfig {
    /// Federate at all. Ignored (off) for the domain `localhost`: there is
    /// nobody to federate with.
    pub enabled: bool,
    /// Only TLS-protected server streams, both ways.
    pub require_encryption: bool,
    pub authentication: S2sAuthentication,
    /// PEM file of extra trust anchors for peers' certificates, besides
    /// the system's.
    pub ca_file: Option<PathBuf>,
    /// Static routes, domain -> "address:port" (STARTTLS), used instead of
    /// DNS: private links and tests.
    pub hosts: std::collections::BTreeMap<String, String>,
    /// A DNS server ("address:port") to ask instead of the system's.
    pub dns_server: Option<String>,
    /// Seconds to set up an outgoing connection (DNS, TCP, TLS, auth).
    pub connect_timeout: u64,
    /// Seconds a server stream may stay silent before it is closed.
    pub idle_timeout: u64,
    /// Stanzas queued per remote domain while its connection is set up.
    pub max_queue: usize,
    /// Incoming server connections at most.
    pub max_incoming: usize,
    /// Outgoing server streams (one per pair of domains) at most; a
    /// stanza for yet another domain bounces with `resource-constraint`.
    pub max_outgoing: usize,
    /// XEP-0288: stanzas both ways over one connection, when the peer
    /// offers or asks for it.
    pub bidi: bool,
}

impl Default for S2sConfig {
    fn default() -> Self {
        S2sConfig {
            enabled: true,
            require_encryption: true,
            authentication: S2sAuthentication::CertificateOrDialback,
            ca_file: None,
            hosts: Default::default(),
            dns_server: None,
            connect_timeout: 30,
            idle_timeout: 600,
            max_queue: 1000,
            max_incoming: 1000,
            max_outgoing: 1000,
            bidi: true,
        }
    }
}

/// An external component (XEP-0114): a program that connects to
/// `[listen] component` and serves `domain` (and the JIDs of its
/// subdomains), proving itself with `secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    pub domain: String,
    pub secret: String,
}

/// What the kernel needs to know, assembled by the server crate.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub domain: String,
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    pub registration: RegistrationConfig,
    pub limits: LimitsConfig,
    pub stream_management: StreamManagementConfig,
    pub archive: ArchiveConfig,
    pub account_muc: AccountMucConfig,
    pub s2s: S2sConfig,
    pub push: PushConfig,
    pub fast: FastConfig,
    pub cluster: ClusterConfig,
}

impl CoreConfig {
    /// Federation is on: enabled, and not the stand-alone `localhost`.
    pub fn federates(&self) -> bool {
        self.s2s.enabled && self.domain != "localhost"
    }

    pub fn registration_allowed(&self, peer_is_loopback: bool) -> bool {
        self.registration.open
            || (peer_is_loopback
                && self
                    .registration
                    .loopback
                    .unwrap_or(self.domain == "localhost"))
    }
}
