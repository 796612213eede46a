//! XEP-0115 + XEP-0163 §4 on the receiving side: a PEP event reaches only
//! the resources whose caps include `<node>+notify`, and one that arrives
//! while caps are being resolved waits for the answer instead of being lost.

use std::time::Duration;

use minidom::Element;
use roost_testkit::{Client, TestServer};

const DISCO: &str = "http://jabber.org/protocol/disco#info";

fn disco_info(features: &[&str]) -> Element {
    let mut xml =
        format!("<query xmlns='{DISCO}'><identity category='client' type='pc' name='test'/>");
    for f in features {
        xml.push_str(&format!("<feature var='{f}'/>"));
    }
    xml.push_str("</query>");
    xml.parse().unwrap()
}

/// Send presence with caps for `features`; returns the ver.
async fn announce(c: &mut Client, features: &[&str]) -> String {
    let ver = roost_core::caps::sha1_ver(&disco_info(features)).unwrap();
    c.send(&format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://roost.test' ver='{ver}'/></presence>"
    ))
    .await;
    ver
}

/// Answer the server's disco#info query about our caps.
async fn answer_disco(c: &mut Client, features: &[&str]) {
    let q = c
        .expect("caps query", |e| {
            e.name() == "iq" && e.attr("type") == Some("get") && e.has_child("query", DISCO)
        })
        .await;
    let node = q
        .get_child("query", DISCO)
        .unwrap()
        .attr("node")
        .unwrap()
        .to_string();
    let mut info = disco_info(features);
    roost_proto::ElementExt::set(&mut info, "node", node);
    c.send(&format!(
        "<iq type='result' id='{}' to='{}'>{}</iq>",
        q.attr("id").unwrap(),
        q.attr("from").unwrap(),
        String::from(&info)
    ))
    .await;
}

fn event_to(resource: &'static str) -> impl Fn(&Element) -> bool {
    move |e| {
        e.name() == "message"
            && e.has_child("event", "http://jabber.org/protocol/pubsub#event")
            && e.attr("to").is_some_and(|t| t.ends_with(resource))
    }
}

const EVENT: &str = "<message type='headline' to='alice@localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:tune'><item id='1'><tune xmlns='urn:example:tune'/></item></items></event></message>";

#[tokio::test]
async fn events_reach_only_resources_whose_caps_ask_for_the_node() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut wants = s.login("alice", "wants").await;
    let mut ignores = s.login("alice", "ignores").await;
    let mut plain = s.login("alice", "plain").await;
    announce(&mut wants, &["urn:example:tune+notify", DISCO]).await;
    answer_disco(&mut wants, &["urn:example:tune+notify", DISCO]).await;
    announce(&mut ignores, &["urn:example:mood+notify"]).await;
    answer_disco(&mut ignores, &["urn:example:mood+notify"]).await;
    plain.available().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = s.login("bob", "desk").await;
    b.send(EVENT).await;
    wants.expect("event", event_to("/wants")).await;
    assert!(ignores
        .gets_within(Duration::from_millis(300), event_to("/ignores"))
        .await
        .is_none());
    assert!(plain
        .gets_within(Duration::from_millis(100), event_to("/plain"))
        .await
        .is_none());
}

#[tokio::test]
async fn an_event_during_caps_resolution_waits_and_is_delivered_afterwards() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "slow").await;
    announce(&mut a, &["urn:example:tune+notify"]).await;
    // The server's query is outstanding; the event arrives meanwhile.
    let mut b = s.login("bob", "desk").await;
    b.send(EVENT).await;
    assert!(a
        .gets_within(Duration::from_millis(300), event_to("/slow"))
        .await
        .is_none());
    answer_disco(&mut a, &["urn:example:tune+notify"]).await;
    a.expect("held event", event_to("/slow")).await;
}

#[tokio::test]
async fn verified_caps_are_cached_so_a_second_client_is_not_asked() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut one = s.login("alice", "one").await;
    announce(&mut one, &["urn:example:tune+notify"]).await;
    answer_disco(&mut one, &["urn:example:tune+notify"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut two = s.login("alice", "two").await;
    announce(&mut two, &["urn:example:tune+notify"]).await;
    assert!(two
        .gets_within(Duration::from_millis(400), |e| e.name() == "iq"
            && e.has_child("query", DISCO))
        .await
        .is_none());
}
