//! XEP-0363 HTTP File Upload on `upload.<domain>`: a local user asks for a
//! slot (file name, size, content type); the service answers with a PUT
//! URL signed with HMAC-SHA-256 over path, size, content type, owner and
//! expiry (five minutes), and the GET URL. The HTTP(S) listeners serve
//! both (`http.rs`): the PUT streams the body to
//! `data_dir/uploads/<id>/`, the GET streams it back with ranges.
//! Limits: `[upload] max_file_size` per file, `quota` per user; files older
//! than `expire_days` are deleted; a removed account's files go too.

pub mod http;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use jid::BareJid;
use minidom::Element;
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError, StanzaKind};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::router::Service;
use crate::server::Server;

pub const NS: &str = "urn:xmpp:http:upload:0";
/// Where the HTTP listeners serve uploads.
pub const PATH_PREFIX: &str = "/upload/";
/// Seconds a PUT URL stays valid.
const SLOT_LIFETIME: u64 = 300;

/// `[upload]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    pub enabled: bool,
    /// The service's domain; default `upload.<domain>`.
    pub domain: Option<String>,
    /// The URL the HTTP(S) listener is reached at from clients, without a
    /// trailing slash; default `https://<domain>:5281`.
    pub url: Option<String>,
    /// Largest file, bytes.
    pub max_file_size: u64,
    /// Bytes a user may keep stored.
    pub quota: u64,
    /// Files older than this many days are deleted; 0 keeps them.
    pub expire_days: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            enabled: true,
            domain: None,
            url: None,
            max_file_size: 100 * 1024 * 1024,
            quota: 1024 * 1024 * 1024,
            expire_days: 30,
        }
    }
}

impl UploadConfig {
    pub fn service_domain(&self, domain: &str) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| format!("upload.{domain}"))
    }
    pub fn base_url(&self, domain: &str) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("https://{domain}:5281"))
            .trim_end_matches('/')
            .to_string()
    }
}

/// What a signed PUT URL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub id: String,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
    pub owner: String,
    pub expiry: u64,
}

/// The stored files: where, whose, how big.
pub struct Uploads {
    pub config: UploadConfig,
    pub domain: String,
    pub dir: PathBuf,
    secret: [u8; 32],
    /// Bytes stored per owner.
    usage: Mutex<HashMap<String, u64>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Keep a file name to one path segment of printable characters.
fn clean_name(name: &str) -> Option<String> {
    let n: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
        .collect();
    let n = n.trim().trim_start_matches('.').to_string();
    (!n.is_empty() && n.len() <= 200).then_some(n)
}

pub(crate) fn hex(b: &[u8]) -> String {
    crate::s2s::dialback::hex(b)
}

impl Uploads {
    pub fn open(
        config: UploadConfig,
        domain: &str,
        data_dir: &Path,
    ) -> std::io::Result<Arc<Uploads>> {
        let dir = data_dir.join("uploads");
        std::fs::create_dir_all(&dir)?;
        let mut usage: HashMap<String, u64> = HashMap::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if let Some(meta) = read_meta(&entry.path()) {
                *usage.entry(meta.owner).or_default() += meta.size;
            }
        }
        Ok(Arc::new(Uploads {
            domain: config.service_domain(domain),
            config,
            dir,
            secret: rand::random(),
            usage: Mutex::new(usage),
        }))
    }

    fn sign(&self, s: &Slot) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(
            format!(
                "{}/{}\n{}\n{}\n{}\n{}",
                s.id, s.filename, s.size, s.content_type, s.owner, s.expiry
            )
            .as_bytes(),
        );
        hex(&mac.finalize().into_bytes())
    }

    /// Check a PUT's signature (constant time) and expiry.
    pub fn verify(&self, s: &Slot, sig: &str) -> bool {
        s.expiry >= now() && crate::s2s::dialback::same_secret(&self.sign(s), sig)
    }

    pub fn used(&self, owner: &str) -> u64 {
        self.usage
            .lock()
            .map(|u| u.get(owner).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn add_usage(&self, owner: &str, bytes: i64) {
        if let Ok(mut u) = self.usage.lock() {
            let e = u.entry(owner.to_string()).or_default();
            *e = (*e as i64 + bytes).max(0) as u64;
        }
    }

    /// XEP-0363 §4: a slot, or the error for the request.
    pub fn slot(
        &self,
        owner: &BareJid,
        request: &Element,
        base: &str,
    ) -> Result<Element, StanzaError> {
        let bad = |t: &str| StanzaError::new(Condition::BadRequest).with_text(t);
        let filename = request
            .attr("filename")
            .and_then(clean_name)
            .ok_or_else(|| bad("a file name is needed"))?;
        let size: u64 = request
            .attr("size")
            .and_then(|s| s.parse().ok())
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                StanzaError::new(Condition::NotAcceptable).with_text("a size is needed")
            })?;
        if size > self.config.max_file_size {
            crate::limits::hit(crate::limits::Limit::Upload);
            return Err(StanzaError::new(Condition::NotAcceptable)
                .with_text("the file is too large")
                .with_app(
                    Element::bare("file-too-large", NS).child(
                        Element::bare("max-file-size", NS)
                            .text_node(self.config.max_file_size.to_string()),
                    ),
                ));
        }
        if self.used(owner.as_str()) + size > self.config.quota {
            crate::limits::hit(crate::limits::Limit::Upload);
            return Err(StanzaError::new(Condition::ResourceConstraint)
                .with_text("your upload quota is used up"));
        }
        let content_type = request
            .attr("content-type")
            .filter(|c| {
                !c.is_empty() && c.len() <= 255 && c.is_ascii() && !c.contains(['\r', '\n'])
            })
            .unwrap_or("application/octet-stream")
            .to_string();
        let slot = Slot {
            id: roost_proto::id::random_token(24),
            filename,
            size,
            content_type,
            owner: owner.to_string(),
            expiry: now() + SLOT_LIFETIME,
        };
        let path = format!("{PATH_PREFIX}{}/{}", slot.id, http::encode(&slot.filename));
        let put = format!(
            "{base}{path}?e={}&o={}&s={}",
            slot.expiry,
            http::encode(&slot.owner),
            self.sign(&slot)
        );
        let get = format!("{base}{path}");
        Ok(Element::bare("slot", NS)
            .child(Element::bare("put", NS).attr_set("url", put))
            .child(Element::bare("get", NS).attr_set("url", get)))
    }

    /// Delete files older than `expire_days`; and those of removed owners.
    pub fn sweep(&self, removed: Option<&str>) {
        let cutoff = (self.config.expire_days > 0)
            .then(|| now().saturating_sub(self.config.expire_days * 86_400));
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(meta) = read_meta(&path) else {
                continue;
            };
            let old = cutoff.is_some_and(|c| meta.created < c);
            let orphan = removed.is_some_and(|r| r == meta.owner);
            if (old || orphan) && std::fs::remove_dir_all(&path).is_ok() {
                self.add_usage(&meta.owner, -(meta.size as i64));
            }
        }
    }
}

/// A stored file's record, `<dir>/meta`.
pub struct Meta {
    pub owner: String,
    pub size: u64,
    pub content_type: String,
    pub filename: String,
    pub created: u64,
}

pub fn read_meta(dir: &Path) -> Option<Meta> {
    let text = std::fs::read_to_string(dir.join("meta")).ok()?;
    let mut lines = text.lines();
    Some(Meta {
        owner: lines.next()?.to_string(),
        size: lines.next()?.parse().ok()?,
        content_type: lines.next()?.to_string(),
        filename: lines.next()?.to_string(),
        created: lines.next()?.parse().ok()?,
    })
}

pub(crate) fn write_meta(dir: &Path, s: &Slot) -> std::io::Result<()> {
    std::fs::write(
        dir.join("meta"),
        format!(
            "{}\n{}\n{}\n{}\n{}\n",
            s.owner,
            s.size,
            s.content_type,
            s.filename,
            now()
        ),
    )
}

/// The service on `upload.<domain>`: disco and slot requests.
pub struct UploadService {
    pub uploads: Arc<Uploads>,
}

impl UploadService {
    fn answer(
        &self,
        server: &Arc<Server>,
        stanza: &Stanza,
    ) -> Result<Option<Element>, StanzaError> {
        let payload = stanza
            .el
            .children()
            .next()
            .ok_or_else(StanzaError::service_unavailable)?;
        if payload.is("query", ns::DISCO_INFO) && stanza.type_attr() == Some("get") {
            let form = Element::bare("x", ns::DATA_FORMS)
                .attr_set("type", "result")
                .child(
                    Element::bare("field", ns::DATA_FORMS)
                        .attr_set("var", "FORM_TYPE")
                        .attr_set("type", "hidden")
                        .child(Element::bare("value", ns::DATA_FORMS).text_node(NS)),
                )
                .child(
                    Element::bare("field", ns::DATA_FORMS)
                        .attr_set("var", "max-file-size")
                        .child(
                            Element::bare("value", ns::DATA_FORMS)
                                .text_node(self.uploads.config.max_file_size.to_string()),
                        ),
                );
            return Ok(Some(
                crate::caps::disco_info(
                    vec![crate::caps::disco_identity(
                        "store",
                        "file",
                        Some("HTTP File Upload"),
                    )],
                    vec![NS],
                    None,
                )
                .child(form),
            ));
        }
        if payload.is("query", ns::DISCO_ITEMS) && stanza.type_attr() == Some("get") {
            return Ok(Some(Element::bare("query", ns::DISCO_ITEMS)));
        }
        if payload.is("request", NS) && stanza.type_attr() == Some("get") {
            // Uploads are for this server's users.
            let owner = stanza
                .from
                .as_ref()
                .filter(|f| f.domain().as_str() == server.config.domain)
                .map(|f| f.to_bare())
                .filter(|b| b.node().is_some())
                .ok_or_else(|| {
                    StanzaError::new(Condition::NotAllowed).with_text("uploads are for local users")
                })?;
            let base = self.uploads.config.base_url(&server.config.domain);
            return self.uploads.slot(&owner, payload, &base).map(Some);
        }
        Err(StanzaError::service_unavailable())
    }
}

impl Service for UploadService {
    fn deliver(&self, server: &Arc<Server>, stanza: Stanza) {
        if stanza.kind != StanzaKind::Iq || !stanza.is_iq_request() {
            if stanza.kind == StanzaKind::Message && !stanza.is_error() {
                server.bounce(&stanza, StanzaError::service_unavailable());
            }
            return;
        }
        let reply = crate::server::iq_reply(&stanza.el, self.answer(server, &stanza));
        server.route_element(reply);
    }
    fn name(&self) -> Option<String> {
        Some("HTTP File Upload".into())
    }
}

/// Hourly: delete expired files.
pub fn spawn_expiry(server: &Arc<Server>, uploads: &Arc<Uploads>) {
    if uploads.config.expire_days == 0 {
        return;
    }
    let (server, uploads) = (server.clone(), uploads.clone());
    tokio::spawn(async move {
        let mut shutdown = server.shutdown_signal();
        loop {
            let u = uploads.clone();
            let _ = tokio::task::spawn_blocking(move || u.sweep(None)).await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = crate::server::until_shutdown(&mut shutdown) => return,
            }
        }
    });
}
