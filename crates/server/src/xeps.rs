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
        "RFC 7395: XMPP over WebSocket",
        "`/xmpp-websocket` on the HTTP listeners",
    ),
    (
        "XEP-0156: Discovering Alternative XMPP Connection Methods",
        "`/.well-known/host-meta` and `host-meta.json` name the WebSocket and BOSH URLs",
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

/// XEP-0479 (Compliance Suites 2023), "Advanced Server" column of the
/// Core, Web, IM, Mobile and A/V suites: the specs each asks for. Every one
/// must be in the table (checked by the test below).
const COMPLIANCE: &[(&str, &[&str])] = &[
    (
        "Core",
        &[
            "RFC 6120", "XEP-0368", "XEP-0030", "XEP-0115", "XEP-0114", "XEP-0163",
        ],
    ),
    ("Web", &["RFC 7395", "XEP-0206", "XEP-0124", "XEP-0156"]),
    (
        "IM",
        &[
            "RFC 6121", "XEP-0398", "XEP-0153", "XEP-0054", "XEP-0280", "XEP-0191", "XEP-0045",
            "XEP-0249", "XEP-0048", "XEP-0313", "XEP-0402", "XEP-0410", "XEP-0223", "XEP-0049",
            "XEP-0198", "XEP-0363",
        ],
    ),
    ("Mobile", &["XEP-0198", "XEP-0352", "XEP-0357"]),
    ("A/V", &["XEP-0215"]),
];

/// Specs of `COMPLIANCE` that no row names.
fn missing_for_compliance(rows: &[(String, String, String)]) -> Vec<&'static str> {
    COMPLIANCE
        .iter()
        .flat_map(|(_, specs)| specs.iter().copied())
        .filter(|spec| !rows.iter().any(|r| r.0.starts_with(&format!("{spec}:"))))
        .collect()
}

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
    let missing = missing_for_compliance(&rows);
    for (spec, version, note) in &rows {
        out.push_str(&format!("| {spec} | {version} | {note} |\n"));
    }
    out.push_str(
        "\n## XMPP Compliance Suites (XEP-0479)\n\n\
         What the \"Advanced Server\" column of each suite asks for; every one is \
         in the table above (a test checks it):\n\n",
    );
    for (suite, specs) in COMPLIANCE {
        out.push_str(&format!("- {suite}: {}\n", specs.join(", ")));
    }
    if !missing.is_empty() {
        out.push_str(&format!("\nMissing: {}\n", missing.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_spec_of_the_advanced_server_suites_is_implemented() {
        assert!(
            !super::render().contains("\nMissing: "),
            "{}",
            super::render()
        );
    }

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
