//! XEP-0215 External Service Discovery over a real session: the configured
//! STUN/TURN servers, TURN credentials in coturn's REST API scheme, and
//! nothing for strangers.

use base64::Engine;
use hmac::Mac;
use roost_features::extdisco::{ExtdiscoConfig, ExternalService};
use roost_testkit::TestServer;

const NS: &str = "urn:xmpp:extdisco:2";

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.extdisco = ExtdiscoConfig {
            services: vec![
                ExternalService {
                    kind: "stun".into(),
                    host: "stun.example.org".into(),
                    port: 3478,
                    transport: "udp".into(),
                },
                ExternalService {
                    kind: "turn".into(),
                    host: "turn.example.org".into(),
                    port: 3478,
                    transport: "udp".into(),
                },
            ],
            turn_secret: Some("shared with coturn".into()),
            credential_lifetime: 3600,
        }
    })
    .await
}

#[tokio::test]
async fn a_user_gets_the_servers_and_turn_credentials() {
    let s = server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
    let info = a
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert!(String::from(&info).contains(NS), "advertised in disco");
    let r = a
        .iq(
            "get",
            Some("localhost"),
            &format!("<services xmlns='{NS}'/>"),
        )
        .await;
    let services: Vec<_> = r
        .get_child("services", NS)
        .expect("services")
        .children()
        .cloned()
        .collect();
    assert_eq!(services.len(), 2);
    let stun = &services[0];
    assert_eq!(stun.attr("type"), Some("stun"));
    assert_eq!(stun.attr("username"), None, "STUN needs no credentials");
    let turn = &services[1];
    assert_eq!(turn.attr("host"), Some("turn.example.org"));
    assert_eq!(turn.attr("restricted"), Some("1"));
    let username = turn.attr("username").unwrap();
    let (expiry, account) = username.split_once(':').unwrap();
    assert_eq!(account, "alice@localhost");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(expiry > now && expiry <= now + 3601);
    // What coturn computes from the same secret.
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"shared with coturn").unwrap();
    mac.update(username.as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn.attr("password"), Some(want.as_str()));
    assert!(turn.attr("expires").is_some());
    // A type filter.
    let r = a
        .iq(
            "get",
            Some("localhost"),
            &format!("<services xmlns='{NS}' type='turn'/>"),
        )
        .await;
    assert_eq!(r.get_child("services", NS).unwrap().children().count(), 1);
    // Credentials for one service.
    let r = a
        .iq(
            "get",
            Some("localhost"),
            &format!("<credentials xmlns='{NS}'><service host='turn.example.org' type='turn'/></credentials>"),
        )
        .await;
    let creds = r.get_child("credentials", NS).expect("credentials");
    assert_eq!(creds.children().count(), 1);
    assert!(creds.children().next().unwrap().attr("password").is_some());
}
