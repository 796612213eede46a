//! XEP-0484 FAST token logins (HT-SHA-256-NONE) over a real socket: a
//! token handed out on a password login, a one-round-trip login with it,
//! rotation, invalidation, replay and wrong tokens refused, tokens bound to
//! their client, and revocation as the CLI does it.

use base64::Engine;
use minidom::Element;
use roost_testkit::{Conn, TestServer};

const SASL2: &str = "urn:xmpp:sasl:2";
const FAST: &str = "urn:xmpp:fast:0";
const UA_ID: &str = "3a8e5f2c-0b5d-4f7e-9c1a-5d2f8e7b6a90";

fn ua(id: &str) -> String {
    format!("<user-agent id='{id}'><software>Test</software></user-agent>")
}

async fn connected(s: &TestServer) -> (Conn, Element) {
    let mut c = Conn::connect(s.c2s_tls(), true).await.expect("connect");
    c.domain = "localhost".into();
    let f = c.open_stream().await;
    (c, f)
}

/// A password login asking for a token; the token.
async fn token_by_password(s: &TestServer, ua_id: &str) -> String {
    let (mut c, f) = connected(s).await;
    let fast = f
        .get_child("authentication", SASL2)
        .and_then(|a| a.get_child("inline", SASL2))
        .and_then(|i| i.get_child("fast", FAST))
        .expect("FAST offered inline");
    assert!(fast.children().any(|m| m.text() == "HT-SHA-256-NONE"));
    let ok = c
        .authenticate2(
            "alice",
            "pw-alice",
            &format!(
                "{}<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>",
                ua(ua_id)
            ),
        )
        .await;
    assert_eq!(ok.name(), "success", "{}", String::from(&ok));
    token_of(&ok).expect("a token in success")
}

fn token_of(success: &Element) -> Option<String> {
    let t = success.get_child("token", FAST)?;
    assert!(t.attr("expiry").is_some());
    t.attr("token").map(str::to_string)
}

/// A FAST login; the server's answer (its final message checked on success).
async fn fast_login(s: &TestServer, token: &str, ua_id: &str, fast_attrs: &str) -> Element {
    let (mut c, _) = connected(s).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut msg = b"alice\0".to_vec();
    msg.extend(roost_sasl::ht::initiator(token.as_bytes(), b""));
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='HT-SHA-256-NONE'><initial-response>{}</initial-response>{}<fast xmlns='{FAST}' {fast_attrs}/></authenticate>",
        b64.encode(&msg),
        ua(ua_id)
    ))
    .await;
    let r = c.next_element().await.expect("an answer");
    if r.name() == "success" {
        let data = r
            .get_child("additional-data", SASL2)
            .map(|d| d.text())
            .unwrap_or_default();
        let data = b64.decode(data.trim()).unwrap();
        assert_eq!(
            data,
            roost_sasl::ht::responder(token.as_bytes(), b""),
            "the server proves it knows the token"
        );
    }
    r
}

#[tokio::test]
async fn a_token_from_a_password_login_logs_in_in_one_round_trip() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let token = token_by_password(&s, UA_ID).await;
    let ok = fast_login(&s, &token, UA_ID, "").await;
    assert_eq!(ok.name(), "success", "{}", String::from(&ok));
    assert_eq!(
        ok.get_child("authorization-identifier", SASL2)
            .map(|a| a.text()),
        Some("alice@localhost".to_string())
    );
    // Again: tokens are reusable until they expire or are replaced.
    assert_eq!(fast_login(&s, &token, UA_ID, "").await.name(), "success");
}

#[tokio::test]
async fn wrong_tokens_other_clients_and_replays_are_refused() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let token = token_by_password(&s, UA_ID).await;
    let f = fast_login(&s, "not the token", UA_ID, "").await;
    assert_eq!(f.name(), "failure");
    assert!(f.has_child("not-authorized", "urn:ietf:params:xml:ns:xmpp-sasl"));
    // A token belongs to the client it was given to.
    let other = "0b1e7c55-6f0a-4d8e-8a51-9c2b7e3d4f10";
    assert_eq!(fast_login(&s, &token, other, "").await.name(), "failure");
    // With a count, each login must count higher than the last.
    assert_eq!(
        fast_login(&s, &token, UA_ID, "count='5'").await.name(),
        "success"
    );
    assert_eq!(
        fast_login(&s, &token, UA_ID, "count='5'").await.name(),
        "failure"
    );
    assert_eq!(
        fast_login(&s, &token, UA_ID, "count='6'").await.name(),
        "success"
    );
}

#[tokio::test]
async fn invalidate_ends_a_token() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let token = token_by_password(&s, UA_ID).await;
    let ok = fast_login(&s, &token, UA_ID, "invalidate='true'").await;
    assert_eq!(ok.name(), "success");
    assert!(token_of(&ok).is_none(), "no new token after invalidate");
    assert_eq!(fast_login(&s, &token, UA_ID, "").await.name(), "failure");
}

#[tokio::test]
async fn tokens_rotate_and_the_newer_one_retires_the_older() {
    // A short life: half of it gone after two seconds.
    let s = TestServer::start_with(|c| c.fast.token_lifetime = 4).await;
    s.user("alice").await;
    let first = token_by_password(&s, UA_ID).await;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let ok = fast_login(&s, &first, UA_ID, "").await;
    assert_eq!(ok.name(), "success");
    let second = token_of(&ok).expect("a rotated token");
    assert_ne!(first, second);
    // Until the new one is used, the old one still works.
    assert_eq!(fast_login(&s, &first, UA_ID, "").await.name(), "success");
    let second = match token_of(&fast_login(&s, &first, UA_ID, "").await) {
        Some(t) => t,
        None => second,
    };
    assert_eq!(fast_login(&s, &second, UA_ID, "").await.name(), "success");
    assert_eq!(
        fast_login(&s, &first, UA_ID, "").await.name(),
        "failure",
        "using the newer token retired the older"
    );
}

#[tokio::test]
async fn revoked_tokens_no_longer_log_in() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let token = token_by_password(&s, UA_ID).await;
    let stores = s.running.server.stores.clone();
    let alice = jid::BareJid::new("alice@localhost").unwrap();
    let listed = roost_core::c2s::fast::records(&stores, &alice).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].client, UA_ID);
    let n = roost_core::c2s::fast::revoke(&stores, &alice, Some(UA_ID))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(fast_login(&s, &token, UA_ID, "").await.name(), "failure");
}

#[tokio::test]
async fn tokens_are_not_in_the_database() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let token = token_by_password(&s, UA_ID).await;
    let db = std::fs::read(s.dir.path().join("roost.sqlite")).unwrap();
    let wal = std::fs::read(s.dir.path().join("roost.sqlite-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is stored"
        );
    }
}
