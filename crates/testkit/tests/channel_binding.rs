//! Channel binding (RFC 9266 tls-exporter, RFC 5929 tls-server-end-point,
//! XEP-0440) for SCRAM-*-PLUS and FAST HT-SHA-256-EXPR/-ENDP, and the
//! XEP-0474 downgrade protection hash, over real TLS streams: the binding
//! data is what the client computes from its own TLS session and the
//! certificate it saw.

use base64::Engine;
use minidom::Element;
use roost_core::c2s::channel_binding::server_end_point;
use roost_sasl::{Hash, ScramClient};
use roost_testkit::{Conn, TestServer};

const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const SASL2: &str = "urn:xmpp:sasl:2";
const EP: &str = "tls-server-end-point";
const EX: &str = "tls-exporter";

async fn connected(s: &TestServer) -> (Conn, Element) {
    let mut c = Conn::connect(s.c2s_tls(), true).await.expect("connect");
    c.domain = "localhost".into();
    let f = c.open_stream().await;
    (c, f)
}

fn advertised(f: &Element) -> Vec<String> {
    f.get_child("mechanisms", SASL)
        .expect("mechanisms")
        .children()
        .map(|m| m.text())
        .collect()
}

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

fn unb64(t: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(t.trim())
        .unwrap()
}

/// A SCRAM exchange with RFC 6120 SASL; the final answer's name.
async fn scram(c: &mut Conn, mechanism: &str, mut client: ScramClient) -> Result<(), String> {
    c.send(&format!(
        "<auth xmlns='{SASL}' mechanism='{mechanism}'>{}</auth>",
        b64(&client.client_first())
    ))
    .await;
    let ch = c.next_element().await.unwrap();
    if ch.name() != "challenge" {
        return Err(String::from(&ch));
    }
    let fin = client
        .handle_server_first(&unb64(&ch.text()))
        .map_err(|e| format!("client refused the server-first-message: {e}"))?;
    c.send(&format!(
        "<response xmlns='{SASL}'>{}</response>",
        b64(&fin)
    ))
    .await;
    let r = c.next_element().await.unwrap();
    if r.name() != "success" {
        return Err(String::from(&r));
    }
    client
        .verify_server_final(&unb64(&r.text()))
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn plus_mechanisms_and_the_binding_type_are_offered_over_tls() {
    let s = TestServer::start().await;
    let (c, f) = connected(&s).await;
    let m = advertised(&f);
    assert_eq!(&m[..2], ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"], "{m:?}");
    let types: Vec<&str> = f
        .get_child("sasl-channel-binding", "urn:xmpp:sasl-cb:0")
        .expect("XEP-0440")
        .children()
        .filter_map(|t| t.attr("type"))
        .collect();
    assert_eq!(types, [EX, EP]);
    let sasl2: Vec<String> = f
        .get_child("authentication", SASL2)
        .unwrap()
        .children()
        .filter(|c| c.name() == "mechanism")
        .map(|c| c.text())
        .collect();
    assert_eq!(sasl2, m, "SASL2 offers the same");
    assert!(c.peer_certificate.is_some() && c.exporter.is_some());
}

#[tokio::test]
async fn scram_plus_with_tls_exporter_binds_to_this_tls_session() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let (mut c, f) = connected(&s).await;
    let seen = advertised(&f);
    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
    let ours = c.exporter.clone().expect("TLS 1.3 exporter");
    let client = ScramClient::new(Hash::Sha256, "alice", "pw-alice")
        .with_channel_binding(EX, ours)
        .expecting_ssdp(&seen, Some(&[EX, EP]));
    scram(&mut c, "SCRAM-SHA-256-PLUS", client).await.unwrap();
    // Another session's exporter (a relayed login): refused.
    let (other, _) = connected(&s).await;
    let (mut c, _) = connected(&s).await;
    let relayed = ScramClient::new(Hash::Sha256, "alice", "pw-alice")
        .with_channel_binding(EX, other.exporter.clone().unwrap());
    assert!(scram(&mut c, "SCRAM-SHA-256-PLUS", relayed).await.is_err());
}

#[tokio::test]
async fn scram_plus_binds_to_the_certificate_the_client_saw() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let (mut c, f) = connected(&s).await;
    let cb = server_end_point(c.peer_certificate.as_ref().unwrap()).unwrap();
    let seen = advertised(&f);
    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
    let client = ScramClient::new(Hash::Sha256, "alice", "pw-alice")
        .with_channel_binding(EP, cb.clone())
        .expecting_ssdp(&seen, Some(&[EX, EP]));
    scram(&mut c, "SCRAM-SHA-256-PLUS", client).await.unwrap();
    // Bound to another certificate (a man in the middle's): refused.
    let (mut c, _) = connected(&s).await;
    let client =
        ScramClient::new(Hash::Sha1, "alice", "pw-alice").with_channel_binding(EP, vec![0; 32]);
    assert!(scram(&mut c, "SCRAM-SHA-1-PLUS", client).await.is_err());
}

#[tokio::test]
async fn downgrades_are_detected() {
    let s = TestServer::start().await;
    s.user("alice").await;
    // A client that can bind but saw no -PLUS says 'y': the server, which
    // offered -PLUS, knows the list was tampered with.
    let (mut c, _) = connected(&s).await;
    let y = ScramClient::new(Hash::Sha256, "alice", "pw-alice").saying_y();
    let refused = scram(&mut c, "SCRAM-SHA-256", y).await.unwrap_err();
    assert!(refused.contains("not-authorized"), "{refused}");
    // A client that saw a stripped list (no -PLUS, no XEP-0440) finds the
    // server's XEP-0474 hash does not match and stops.
    let (mut c, _) = connected(&s).await;
    let stripped = ScramClient::new(Hash::Sha256, "alice", "pw-alice")
        .expecting_ssdp(&["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"], None);
    let err = scram(&mut c, "SCRAM-SHA-256", stripped).await.unwrap_err();
    assert!(err.contains("server-first"), "{err}");
    // Without tampering the plain mechanism still works and the hash matches.
    let (mut c, f) = connected(&s).await;
    let seen = advertised(&f);
    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
    let honest =
        ScramClient::new(Hash::Sha256, "alice", "pw-alice").expecting_ssdp(&seen, Some(&[EX, EP]));
    scram(&mut c, "SCRAM-SHA-256", honest).await.unwrap();
}

#[tokio::test]
async fn fast_tokens_bound_to_the_certificate() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let ua = "<user-agent id='5f0c7e7e-7a5b-4a32-9d70-3d9b8c2f1e44'/>";
    let (mut c, f) = connected(&s).await;
    let fast = f
        .get_child("authentication", SASL2)
        .and_then(|a| a.get_child("inline", SASL2))
        .and_then(|i| i.get_child("fast", "urn:xmpp:fast:0"))
        .unwrap();
    let mechs: Vec<String> = fast.children().map(|m| m.text()).collect();
    assert_eq!(
        mechs,
        ["HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
    );
    let ok = c
        .authenticate2(
            "alice",
            "pw-alice",
            &format!("{ua}<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-ENDP'/>"),
        )
        .await;
    let token = ok
        .get_child("token", "urn:xmpp:fast:0")
        .and_then(|t| t.attr("token"))
        .expect("token")
        .to_string();
    let login = |cb: Vec<u8>, mechanism: &'static str| {
        let token = token.clone();
        let s = &s;
        async move {
            let (mut c, _) = connected(s).await;
            let mut msg = b"alice\0".to_vec();
            msg.extend(roost_sasl::ht::initiator(token.as_bytes(), &cb));
            c.send(&format!(
                "<authenticate xmlns='{SASL2}' mechanism='{mechanism}'><initial-response>{}</initial-response>{ua}<fast xmlns='urn:xmpp:fast:0'/></authenticate>",
                b64(&msg)
            ))
            .await;
            c.next_element().await.unwrap()
        }
    };
    let cb = server_end_point(c.peer_certificate.as_ref().unwrap()).unwrap();
    let ok = login(cb.clone(), "HT-SHA-256-ENDP").await;
    assert_eq!(ok.name(), "success", "{}", String::from(&ok));
    let fin = unb64(&ok.get_child("additional-data", SASL2).unwrap().text());
    assert_eq!(fin, roost_sasl::ht::responder(token.as_bytes(), &cb));
    // Another channel, or the token under the unbound mechanism: refused.
    assert_eq!(
        login(vec![1; 32], "HT-SHA-256-ENDP").await.name(),
        "failure"
    );
    assert_eq!(login(Vec::new(), "HT-SHA-256-NONE").await.name(), "failure");
}

#[tokio::test]
async fn tls_exporter_after_starttls_and_for_fast_tokens() {
    let s = TestServer::start().await;
    s.user("alice").await;
    // STARTTLS: the exporter of the session negotiated mid-stream.
    let mut c = Conn::secured(s.c2s(), false).await;
    let ours = c.exporter.clone().expect("TLS 1.3 exporter after STARTTLS");
    let client = ScramClient::new(Hash::Sha1, "alice", "pw-alice").with_channel_binding(EX, ours);
    scram(&mut c, "SCRAM-SHA-1-PLUS", client).await.unwrap();
    // A FAST token for HT-SHA-256-EXPR works on any later session, bound
    // to that session's exporter.
    let ua = "<user-agent id='9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d'/>";
    let (mut c, _) = connected(&s).await;
    let ok = c
        .authenticate2(
            "alice",
            "pw-alice",
            &format!("{ua}<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-EXPR'/>"),
        )
        .await;
    let token = ok
        .get_child("token", "urn:xmpp:fast:0")
        .and_then(|t| t.attr("token"))
        .expect("token")
        .to_string();
    for (use_own_exporter, want) in [(true, "success"), (false, "failure")] {
        let (mut c, _) = connected(&s).await;
        let cb = if use_own_exporter {
            c.exporter.clone().unwrap()
        } else {
            vec![7; 32]
        };
        let mut msg = b"alice\0".to_vec();
        msg.extend(roost_sasl::ht::initiator(token.as_bytes(), &cb));
        c.send(&format!(
            "<authenticate xmlns='{SASL2}' mechanism='HT-SHA-256-EXPR'><initial-response>{}</initial-response>{ua}<fast xmlns='urn:xmpp:fast:0'/></authenticate>",
            b64(&msg)
        ))
        .await;
        let r = c.next_element().await.unwrap();
        assert_eq!(r.name(), want, "{}", String::from(&r));
    }
}
