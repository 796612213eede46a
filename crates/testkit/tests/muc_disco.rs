//! XEP-0045 §6 with XEP-0030 over sockets: finding the service from the
//! server, the service's identity and public rooms, a room's information
//! and occupants, and the errors for what does not exist.

use roost_testkit::muc::{self, error_condition, room, DATA, SERVICE};
use roost_testkit::TestServer;

const INFO: &str = "http://jabber.org/protocol/disco#info";
const ITEMS: &str = "http://jabber.org/protocol/disco#items";

fn vars(res: &minidom::Element) -> Vec<String> {
    res.get_child("query", INFO)
        .map(|q| {
            q.children()
                .filter(|c| c.name() == "feature")
                .filter_map(|c| c.attr("var").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn item_jids(res: &minidom::Element) -> Vec<String> {
    res.get_child("query", ITEMS)
        .map(|q| {
            q.children()
                .filter_map(|c| c.attr("jid").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_server_lists_the_muc_service_in_its_items() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let res = a
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{ITEMS}'/>"),
        )
        .await;
    assert!(
        item_jids(&res).contains(&SERVICE.to_string()),
        "{}",
        String::from(&res)
    );
}

#[tokio::test]
async fn the_service_is_a_text_conference_with_the_muc_feature() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let res = a
        .iq("get", Some(SERVICE), &format!("<query xmlns='{INFO}'/>"))
        .await;
    let id = res
        .get_child("query", INFO)
        .and_then(|q| q.get_child("identity", INFO))
        .unwrap();
    assert_eq!(id.attr("category"), Some("conference"));
    assert_eq!(id.attr("type"), Some("text"));
    let f = vars(&res);
    assert!(f.contains(&"http://jabber.org/protocol/muc".to_string()));
    assert!(f.contains(&"urn:xmpp:occupant-id:0".to_string()));
}

#[tokio::test]
async fn the_service_lists_public_rooms_only() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    a.create_configured_room(
        &room("town"),
        "crone",
        &[("muc#roomconfig_roomname", "Town Square")],
    )
    .await;
    a.create_configured_room(&room("den"), "crone", &[("muc#roomconfig_publicroom", "0")])
        .await;
    // Locked rooms are not listed either.
    a.join_room(&room("unfinished"), "crone").await;
    let res = b
        .iq("get", Some(SERVICE), &format!("<query xmlns='{ITEMS}'/>"))
        .await;
    assert_eq!(item_jids(&res), vec![room("town")]);
    let name = res
        .get_child("query", ITEMS)
        .and_then(|q| q.children().next())
        .and_then(|i| i.attr("name"))
        .map(str::to_string);
    assert_eq!(name.as_deref(), Some("Town Square"));
}

#[tokio::test]
async fn a_room_describes_itself_with_features_and_a_roominfo_form() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    a.send(&format!(
        "<message to='{r}' type='groupchat'><subject>Spells</subject></message>"
    ))
    .await;
    a.expect("subject", |e| {
        e.get_child("subject", "jabber:client")
            .is_some_and(|s| s.text() == "Spells")
    })
    .await;
    let res = b
        .iq("get", Some(&r), &format!("<query xmlns='{INFO}'/>"))
        .await;
    let f = vars(&res);
    for want in [
        "http://jabber.org/protocol/muc",
        "http://jabber.org/protocol/muc#stable_id",
        "http://jabber.org/protocol/muc#self-ping-optimization",
        "urn:xmpp:mam:2",
        "urn:xmpp:occupant-id:0",
        "urn:xmpp:sid:0",
        "muc_temporary",
        "muc_open",
        "muc_public",
        "muc_unsecured",
        "muc_unmoderated",
        "muc_semianonymous",
    ] {
        assert!(f.contains(&want.to_string()), "{want} missing from {f:?}");
    }
    let form = res
        .get_child("query", INFO)
        .and_then(|q| q.get_child("x", DATA))
        .unwrap();
    let value = |var: &str| {
        form.children()
            .find(|c| c.attr("var") == Some(var))
            .and_then(|c| c.children().next())
            .map(|v| v.text())
    };
    assert_eq!(
        value("FORM_TYPE").as_deref(),
        Some("http://jabber.org/protocol/muc#roominfo")
    );
    assert_eq!(value("muc#roominfo_subject").as_deref(), Some("Spells"));
    assert_eq!(value("muc#roominfo_occupants").as_deref(), Some("1"));
}

#[tokio::test]
async fn a_room_that_does_not_exist_is_item_not_found() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let res = a
        .iq(
            "get",
            Some(&room("nowhere")),
            &format!("<query xmlns='{INFO}'/>"),
        )
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn occupants_are_listed_to_occupants_only() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    let res = a
        .iq("get", Some(&r), &format!("<query xmlns='{ITEMS}'/>"))
        .await;
    assert_eq!(item_jids(&res), vec![format!("{r}/crone")]);
    let res = b
        .iq("get", Some(&r), &format!("<query xmlns='{ITEMS}'/>"))
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    assert!(item_jids(&res).is_empty());
}

#[tokio::test]
async fn without_a_reserved_nick_the_roomuser_node_is_empty() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    let res = a
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{INFO}' node='x-roomuser-item'/>"),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    assert_eq!(res.get_child("query", INFO).unwrap().children().count(), 0);
}

#[tokio::test]
async fn unknown_requests_to_a_room_get_clear_errors() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    let res = a
        .iq("get", Some(&r), "<query xmlns='urn:example:unknown'/>")
        .await;
    assert_eq!(
        error_condition(&res).as_deref(),
        Some("service-unavailable")
    );
    let res = a
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{INFO}' node='no-such-node'/>"),
        )
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("item-not-found"));
    let res = a
        .iq("set", Some(&r), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert_eq!(
        error_condition(&res).as_deref(),
        Some("feature-not-implemented")
    );
    let res = a
        .iq("get", Some(SERVICE), "<query xmlns='urn:example:unknown'/>")
        .await;
    assert_eq!(
        error_condition(&res).as_deref(),
        Some("service-unavailable")
    );
}

#[tokio::test]
async fn a_message_to_the_service_itself_is_refused() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    a.send(&format!(
        "<message to='{SERVICE}'><body>hello service</body></message>"
    ))
    .await;
    let e = a.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
}

#[tokio::test]
async fn a_disabled_service_is_neither_listed_nor_reachable() {
    let s = TestServer::start_with(|c| {
        c.muc.enabled = false;
        c.account_muc.enabled = false;
    })
    .await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let res = a
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{ITEMS}'/>"),
        )
        .await;
    assert!(!item_jids(&res).contains(&SERVICE.to_string()));
    let res = a
        .iq("get", Some(SERVICE), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert_eq!(
        error_condition(&res).as_deref(),
        Some("remote-server-not-found")
    );
}

#[tokio::test]
async fn the_service_can_live_on_another_domain() {
    let s = muc::server_with(|c| c.muc.domain = Some("rooms.localhost".into())).await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    a.create_room("coven@rooms.localhost", "crone").await;
    let res = a
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{ITEMS}'/>"),
        )
        .await;
    let jids = item_jids(&res);
    assert!(jids.contains(&"rooms.localhost".to_string()), "{jids:?}");
    assert!(!jids.contains(&SERVICE.to_string()), "{jids:?}");
}
