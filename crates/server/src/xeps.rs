//! `docs/xeps.md`: the specs Roost implements, generated from what each
//! module declares (`Module::protocols`), so the list cannot drift from the
//! code. A test compares the file with the generated text.

use crate::modules;

/// The MUC and pubsub services are not modules (they are routed services),
/// nor are the HTTP listeners' framings; their specs are declared here.
const SERVICES: &[(&str, &str)] = &[
    (
        "XEP-0124: Bidirectional-streams Over Synchronous HTTP (BOSH)",
        "`/http-bind` on the HTTP listeners (`[http.bosh]`); no pause, no multiple streams",
    ),
    (
        "XEP-0206: XMPP Over BOSH",
        "same negotiation and session as TCP and WebSocket; stream restarts",
    ),
    (
        "XEP-0045: Multi-User Chat",
        "built-in service at `conference.<domain>`",
    ),
    ("XEP-0249: Direct MUC Invitations", "passed through"),
    (
        "XEP-0410: MUC Self-Ping (Schrödinger's Chat)",
        "answered by rooms; used by account-based joining",
    ),
    (
        "XEP-0421: Anonymous unique occupant identifiers for MUCs",
        "occupant-id on room messages",
    ),
    (
        "XEP-0486: MUC Avatars",
        "room vCards set by owners, hash in `muc#roominfo`",
    ),
    (
        "XEP-0424: Message Retraction",
        "in rooms: an author's retraction tombstones the room's and the accounts' archive copies",
    ),
    (
        "XEP-0425: Moderated Message Retraction",
        "rooms (`urn:xmpp:message-moderate:1`); tombstones in room and personal archives",
    ),
];

pub fn render() -> String {
    let pep = roost_features::pep::PepService::new(roost_features::pep::Limits::default());
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for m in modules::all(&crate::Config::default(), &pep) {
        for p in m.protocols() {
            rows.push((
                p.spec.to_string(),
                p.version.to_string(),
                format!("module `{}`", m.name()),
            ));
        }
    }
    for (spec, note) in SERVICES {
        rows.push((spec.to_string(), String::new(), note.to_string()));
    }
    let pubsub = roost_pubsub::PROTOCOL;
    rows.push((
        pubsub.spec.to_string(),
        pubsub.version.to_string(),
        "service at `pubsub.<domain>`".to_string(),
    ));
    rows.sort();
    // One row per spec; where several parts implement it, all are named.
    rows.dedup_by(|later, kept| {
        if later.0 != kept.0 {
            return false;
        }
        if kept.1.is_empty() {
            kept.1 = std::mem::take(&mut later.1);
        }
        kept.2 = format!("{}; {}", kept.2, later.2);
        true
    });
    let mut out = String::from(
        "# Specifications implemented\n\nGenerated from the modules' declarations by \
         `crates/server/src/xeps.rs`; regenerate with\n\
         `ROOST_WRITE_DOCS=1 cargo test -p roost-server xeps`.\n\n\
         | spec | version | where |\n| --- | --- | --- |\n",
    );
    for (spec, version, note) in rows {
        out.push_str(&format!("| {spec} | {version} | {note} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_xeps_md_matches_the_modules() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/xeps.md");
        let want = super::render();
        if std::env::var("ROOST_WRITE_DOCS").is_ok() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            have, want,
            "docs/xeps.md is stale: run ROOST_WRITE_DOCS=1 cargo test -p roost-server xeps"
        );
    }
}
