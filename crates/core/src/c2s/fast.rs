//! XEP-0484 Fast Authentication Streamlining Tokens (FAST), with the
//! HT-SHA-256-NONE, HT-SHA-256-ENDP (bound to our certificate) and
//! HT-SHA-256-EXPR (bound to the TLS session) mechanisms: a client that logged in with its password
//! asks for a token (`<request-token/>` in its SASL2 request) and logs in
//! with it next time in one round trip.
//!
//! Tokens are never stored. Each is HMAC-SHA-256 of a random id under a
//! per-server key (`data_dir/fast.key`, outside the database); the account
//! keeps only the ids, with the client (its SASL2 user-agent id), the
//! mechanism, the expiry and the replay counter. A database that leaks
//! gives no token away. Per client two slots (XEP-0484 §5): the token in
//! use and a newer one handed out but not yet used; using the newer one
//! retires the older. A token is rotated when half its life is gone;
//! `invalidate` ends it; the number of clients per account is bounded; the
//! user can list and revoke them (`roost user tokens`, `revoke-tokens`),
//! and a password change revokes them all.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use jid::BareJid;
use minidom::Element;
use roost_proto::{Elem, ElementExt};
use roost_sasl::ht::HtInitial;
use roost_store::Stores;
use sha2::Sha256;

pub const NS: &str = "urn:xmpp:fast:0";
pub const MECHANISM: &str = roost_sasl::ht::HT_SHA_256_NONE;
/// The same bound to our certificate (tls-server-end-point).
pub const MECHANISM_ENDP: &str = roost_sasl::ht::HT_SHA_256_ENDP;
/// The same bound to the TLS session (tls-exporter).
pub const MECHANISM_EXPR: &str = roost_sasl::ht::HT_SHA_256_EXPR;
const KEY: &str = "fast-tokens";

/// The per-server key tokens are derived from.
pub struct FastKey([u8; 32]);

impl FastKey {
    /// Read `data_dir/fast.key`, or make it (readable by the owner only).
    /// The key the nodes of a cluster share (cluster/secrets.rs).
    pub fn from_bytes(key: [u8; 32]) -> FastKey {
        FastKey(key)
    }

    pub fn load_or_create(data_dir: &Path) -> std::io::Result<FastKey> {
        let path = data_dir.join("fast.key");
        if let Ok(bytes) = std::fs::read(&path) {
            if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Ok(FastKey(key));
            }
        }
        let key: [u8; 32] = rand::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write;
        options.open(&path)?.write_all(&key)?;
        Ok(FastKey(key))
    }

    fn token(&self, account: &BareJid, r: &Record) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(format!("{account}\0{}\0{}", r.client, r.id).as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// One token of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The client's SASL2 user-agent id.
    pub client: String,
    pub mechanism: String,
    /// Random; the token is derived from it.
    id: String,
    /// Seconds since the Unix epoch.
    pub expiry: u64,
    /// Handed out, not yet used (the 'new' slot of XEP-0484 §5).
    pub fresh: bool,
    /// The highest `count` seen with it (replay protection).
    count: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub async fn records(stores: &Stores, account: &BareJid) -> Vec<Record> {
    let Ok(Some(xml)) = stores.private.get_private(account, KEY).await else {
        return Vec::new();
    };
    let Ok(root) = xml.parse::<Element>() else {
        return Vec::new();
    };
    root.children()
        .filter_map(|t| {
            Some(Record {
                client: t.attr("client")?.to_string(),
                mechanism: t.attr("mechanism")?.to_string(),
                id: t.attr("id")?.to_string(),
                expiry: t.attr("expiry")?.parse().ok()?,
                fresh: t.attr("fresh") == Some("true"),
                count: t.attr("count").and_then(|c| c.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

async fn save(stores: &Stores, account: &BareJid, list: &[Record]) -> Result<(), String> {
    let xml = Element::bare("tokens", NS)
        .children_from(list.iter().map(|r| {
            Element::bare("token", NS)
                .attr_set("client", r.client.as_str())
                .attr_set("mechanism", r.mechanism.as_str())
                .attr_set("id", r.id.as_str())
                .attr_set("expiry", r.expiry.to_string())
                .attr_set("fresh", if r.fresh { "true" } else { "false" })
                .attr_set("count", r.count.to_string())
        }))
        .to_xml();
    let value = (!list.is_empty()).then_some(xml);
    stores
        .private
        .set_private(account, KEY, value.as_deref())
        .await
        .map_err(|e| e.to_string())
}

/// Revoke the tokens of one client, or all; how many went.
pub async fn revoke(
    stores: &Stores,
    account: &BareJid,
    client: Option<&str>,
) -> Result<usize, String> {
    let mut list = records(stores, account).await;
    let before = list.len();
    list.retain(|r| client.is_some_and(|c| c != r.client));
    save(stores, account, &list).await?;
    Ok(before - list.len())
}

/// The settings FAST runs with.
pub struct Policy<'a> {
    pub key: &'a FastKey,
    /// Seconds a token lives.
    pub lifetime: u64,
    /// Clients with tokens per account at most.
    pub max_clients: usize,
}

/// A new token for `client` in its 'new' slot; the `<token/>` element.
pub async fn issue(
    stores: &Stores,
    policy: &Policy<'_>,
    account: &BareJid,
    client: &str,
    mechanism: &str,
) -> Result<Element, String> {
    let mut list = records(stores, account).await;
    let now = now();
    list.retain(|r| r.expiry > now && !(r.client == client && r.fresh));
    let record = Record {
        client: client.to_string(),
        mechanism: mechanism.to_string(),
        id: roost_proto::id::random_token(24),
        expiry: now + policy.lifetime,
        fresh: true,
        count: 0,
    };
    let token = policy.key.token(account, &record);
    list.push(record);
    // Too many clients: those whose tokens expire first go.
    let mut clients: Vec<(String, u64)> = Vec::new();
    for r in &list {
        match clients.iter_mut().find(|(c, _)| *c == r.client) {
            Some((_, e)) => *e = (*e).max(r.expiry),
            None => clients.push((r.client.clone(), r.expiry)),
        }
    }
    if clients.len() > policy.max_clients {
        clients.sort_by_key(|(_, e)| std::cmp::Reverse(*e));
        let keep: Vec<String> = clients
            .into_iter()
            .take(policy.max_clients)
            .map(|(c, _)| c)
            .collect();
        list.retain(|r| keep.contains(&r.client));
    }
    save(stores, account, &list).await?;
    let expiry = roost_proto::datetime::to_xep82(
        UNIX_EPOCH + std::time::Duration::from_secs(now + policy.lifetime),
    );
    Ok(Element::bare("token", NS)
        .attr_set("expiry", expiry)
        .attr_set("token", token))
}

/// What a FAST login asked besides authentication (`<fast/>`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub count: Option<u64>,
    pub invalidate: bool,
}

impl Usage {
    pub fn parse(fast: &Element) -> Usage {
        Usage {
            count: fast.attr("count").and_then(|c| c.parse().ok()),
            invalidate: matches!(fast.attr("invalidate"), Some("true") | Some("1")),
        }
    }
}

/// A verified FAST login.
pub struct Verified {
    /// The token, for the server's final message.
    pub token: String,
    /// Half its life is gone: hand out the next one.
    pub rotate: bool,
}

/// One token login: who tries, with what.
pub struct Attempt<'a> {
    /// The client's SASL2 user-agent id.
    pub client: &'a str,
    pub mechanism: &'a str,
    pub initial: &'a HtInitial,
    /// Channel-binding data (empty for -NONE).
    pub cb: &'a [u8],
    pub usage: Usage,
}

/// Check the attempt against the client's tokens: the 'new' slot first,
/// then the current one; unexpired, of this mechanism, with a count above
/// the last one seen. A used 'new' token retires the older one.
pub async fn verify(
    stores: &Stores,
    policy: &Policy<'_>,
    account: &BareJid,
    attempt: Attempt<'_>,
) -> Option<Verified> {
    let Attempt {
        client,
        mechanism,
        initial,
        cb,
        usage,
    } = attempt;
    let mut list = records(stores, account).await;
    let now = now();
    let mut candidates: Vec<usize> = (0..list.len())
        .filter(|&i| {
            let r = &list[i];
            r.client == client && r.mechanism == mechanism && r.expiry > now
        })
        .collect();
    candidates.sort_by_key(|&i| !list[i].fresh);
    let i = candidates
        .into_iter()
        .find(|&i| initial.proves(policy.key.token(account, &list[i]).as_bytes(), cb))?;
    let mut changed = false;
    if let Some(count) = usage.count {
        if count <= list[i].count {
            tracing::info!(%account, "FAST token replayed (count not above the last one)");
            return None;
        }
        list[i].count = count;
        changed = true;
    }
    let token = policy.key.token(account, &list[i]);
    let used = list[i].clone();
    let rotate = used.expiry.saturating_sub(now) <= policy.lifetime / 2;
    let before = list.len();
    if usage.invalidate {
        list.retain(|r| r.client != client);
    } else {
        // The used token is now the current one; any other of the client's
        // goes (an older current, or a newer one never used). A token that
        // is the client's only one stays as it is: "fresh" matters only
        // beside another, so most logins write nothing.
        list.retain(|r| r.client != client || r.id == used.id);
    }
    // Before a rotation the used token must be on record as the current
    // one, or handing out the next would drop it as an unused one.
    changed |= list.len() != before || (rotate && used.fresh);
    if changed {
        if let Some(r) = list.iter_mut().find(|r| r.id == used.id) {
            r.fresh = false;
        }
        if let Err(e) = save(stores, account, &list).await {
            tracing::error!(%account, error = %e, "FAST tokens not saved");
            return None;
        }
    }
    Some(Verified {
        token,
        rotate: rotate && !usage.invalidate,
    })
}
