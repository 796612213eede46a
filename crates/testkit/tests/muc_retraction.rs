//! XEP-0425 moderated retraction and XEP-0424 author retraction in rooms,
//! over sockets: who may moderate, what every occupant (every session of
//! an account, account-based joining) hears, the tombstones in the room's
//! archive, in the join history and in the account's personal archive.

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::muc::{self, error_condition, room};
use roost_testkit::{Client, TestServer};

const MAM: &str = "urn:xmpp:mam:2";
const FORWARD: &str = "urn:xmpp:forward:0";
const SID: &str = "urn:xmpp:sid:0";
const RETRACT: &str = "urn:xmpp:message-retract:1";
const MODERATE: &str = "urn:xmpp:message-moderate:1";

/// The room's stanza-id on a reflected message.
fn stanza_id(m: &Element, room: &str) -> String {
    m.children()
        .find(|c| c.is("stanza-id", SID) && c.attr("by") == Some(room))
        .and_then(|c| c.attr("id"))
        .expect("the room's stanza-id")
        .to_string()
}

fn is_retraction_of(e: &Element, id: &str) -> bool {
    e.name() == "message"
        && e.get_child("retract", RETRACT)
            .is_some_and(|r| r.attr("id") == Some(id))
}

async fn moderate(c: &mut Client, room: &str, id: &str, reason: &str) -> Element {
    c.iq(
        "set",
        Some(room),
        &format!(
            "<moderate xmlns='{MODERATE}' id='{id}'><retract xmlns='{RETRACT}'/>\
             <reason>{reason}</reason></moderate>"
        ),
    )
    .await
}

/// The archived messages of `to` (a room, or the account when `None`), by id.
async fn archive(c: &mut Client, to: Option<&str>) -> Vec<(String, Element)> {
    let qid = c.new_id();
    let res = c
        .iq(
            "set",
            to,
            &format!("<query xmlns='{MAM}' queryid='{qid}'/>"),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res:?}");
    let mut out = Vec::new();
    let is_result = |e: &Element| {
        e.get_child("result", MAM)
            .is_some_and(|r| r.attr("queryid") == Some(qid.as_str()))
    };
    while let Some(m) = c.gets_within(Duration::from_millis(150), is_result).await {
        let r = m.get_child("result", MAM).unwrap();
        let msg = r
            .get_child("forwarded", FORWARD)
            .and_then(|f| f.get_child("message", "jabber:client"))
            .unwrap()
            .clone();
        out.push((r.attr("id").unwrap().to_string(), msg));
    }
    out
}

fn find<'a>(rows: &'a [(String, Element)], id: &str) -> &'a Element {
    &rows
        .iter()
        .find(|(i, _)| i == id)
        .unwrap_or_else(|| panic!("{id} not in {rows:?}"))
        .1
}

/// alice owns the room; bob is in it from two sessions (one occupant).
async fn room_with_bob(s: &TestServer, name: &str) -> (Client, Client, Client, String) {
    for u in ["alice", "bob"] {
        s.user(u).await;
    }
    let mut a = s.login("alice", "home").await;
    let r = room(name);
    a.create_room(&r, "crone").await;
    let mut b1 = s.login("bob", "phone").await;
    let mut b2 = s.login("bob", "laptop").await;
    b1.join_room(&r, "bob").await;
    b2.join_room(&r, "bob").await;
    (a, b1, b2, r)
}

#[tokio::test]
async fn a_moderator_retracts_a_message_for_every_session_and_every_archive() {
    // Account-based joining on: bob's account is the occupant.
    let s = TestServer::start().await;
    let (mut a, mut b1, mut b2, r) = room_with_bob(&s, "spamfree").await;
    b1.say(&r, "DM me for free magic potions").await;
    let seen = a.expect_groupchat("DM me for free magic potions").await;
    b2.expect_groupchat("DM me for free magic potions").await;
    let id = stanza_id(&seen, &r);

    let res = moderate(&mut a, &r, &id, "spam").await;
    assert_eq!(res.attr("type"), Some("result"), "{res:?}");
    for c in [&mut a, &mut b1, &mut b2] {
        let m = c
            .expect("the room's retraction", |e| is_retraction_of(e, &id))
            .await;
        // XEP-0425 §3.1: from the room itself, naming the moderator.
        assert_eq!(m.attr("from"), Some(r.as_str()));
        assert_eq!(m.attr("type"), Some("groupchat"));
        let retract = m.get_child("retract", RETRACT).unwrap();
        let moderated = retract.get_child("moderated", MODERATE).unwrap();
        assert_eq!(moderated.attr("by"), Some(format!("{r}/crone").as_str()));
        assert!(moderated.has_child("occupant-id", "urn:xmpp:occupant-id:0"));
        assert_eq!(retract.get_child("reason", RETRACT).unwrap().text(), "spam");
    }

    // The room's archive: a tombstone under the same id, then the announcement.
    let rows = archive(&mut a, Some(&r)).await;
    let t = find(&rows, &id);
    assert!(body(t).is_none(), "{t:?}");
    let retracted = t.get_child("retracted", RETRACT).expect("tombstone");
    assert!(retracted.has_child("moderated", MODERATE));
    assert!(rows.iter().any(|(_, m)| is_retraction_of(m, &id)));

    // bob's personal archive copy (rule 14) is the same tombstone.
    let mine = archive(&mut b1, None).await;
    let t = find(&mine, &id);
    assert!(body(t).is_none(), "{t:?}");
    assert!(t.has_child("retracted", RETRACT));
    assert!(mine.iter().any(|(_, m)| is_retraction_of(m, &id)));

    // A newcomer's join history has the tombstone, not the words.
    s.user("carol").await;
    let mut c = s.login("carol", "home").await;
    c.join_room(&r, "carol").await;
    let words = c
        .gets_within(Duration::from_millis(300), |e| {
            body(e).is_some_and(|b| b.contains("potions"))
        })
        .await;
    assert!(words.is_none(), "the retracted words came back: {words:?}");
}

#[tokio::test]
async fn participants_cannot_moderate_and_bad_requests_are_refused() {
    let s = muc::server().await;
    let (mut a, mut b1, _b2, r) = room_with_bob(&s, "rules").await;
    a.say(&r, "owner speaks").await;
    let seen = b1.expect_groupchat("owner speaks").await;
    let id = stanza_id(&seen, &r);
    // XEP-0425 §3.2: a participant is forbidden.
    let res = moderate(&mut b1, &r, &id, "").await;
    assert_eq!(error_condition(&res).as_deref(), Some("forbidden"));
    // No such message.
    let res = moderate(&mut a, &r, "no-such-id", "").await;
    assert_eq!(error_condition(&res).as_deref(), Some("item-not-found"));
    // No id.
    let res = a
        .iq(
            "set",
            Some(&r),
            &format!("<moderate xmlns='{MODERATE}'><retract xmlns='{RETRACT}'/></moderate>"),
        )
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("bad-request"));
    // An action other than retraction.
    let res = a
        .iq(
            "set",
            Some(&r),
            &format!(
                "<moderate xmlns='{MODERATE}' id='{id}'><edit xmlns='urn:example'/></moderate>"
            ),
        )
        .await;
    assert_eq!(
        error_condition(&res).as_deref(),
        Some("feature-not-implemented")
    );
    // Nothing was retracted.
    let rows = archive(&mut a, Some(&r)).await;
    assert_eq!(body(find(&rows, &id)).as_deref(), Some("owner speaks"));
    // The room advertises the feature (it archives).
    let info = a
        .iq(
            "get",
            Some(&r),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let q = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert!(q
        .children()
        .any(|f| f.name() == "feature" && f.attr("var") == Some(MODERATE)));
}

#[tokio::test]
async fn an_occupant_cannot_forge_a_moderation() {
    let s = muc::server().await;
    let (mut a, mut b1, _b2, r) = room_with_bob(&s, "forgery").await;
    a.say(&r, "keep this").await;
    let seen = b1.expect_groupchat("keep this").await;
    let id = stanza_id(&seen, &r);
    b1.send(&format!(
        "<message to='{r}' type='groupchat' id='f1'><retract xmlns='{RETRACT}' id='{id}'>\
         <moderated xmlns='{MODERATE}' by='{r}/crone'/></retract>\
         <body>retracted by a moderator</body></message>"
    ))
    .await;
    let relayed = a.expect_groupchat("retracted by a moderator").await;
    // Relayed as bob's own (XEP-0424) attempt, without the forged claim.
    assert_eq!(relayed.attr("from"), Some(format!("{r}/bob").as_str()));
    let retract = relayed.get_child("retract", RETRACT).unwrap();
    assert!(!retract.has_child("moderated", MODERATE));
    // And bob did not write that message: it stays.
    let rows = archive(&mut a, Some(&r)).await;
    assert_eq!(body(find(&rows, &id)).as_deref(), Some("keep this"));
}

#[tokio::test]
async fn an_author_retracts_their_own_message_in_every_archive() {
    let s = TestServer::start().await;
    let (mut a, mut b1, mut b2, r) = room_with_bob(&s, "oops").await;
    b1.say(&r, "wrong window").await;
    let seen = a.expect_groupchat("wrong window").await;
    b2.expect_groupchat("wrong window").await;
    let id = stanza_id(&seen, &r);
    // XEP-0424 §4 with the fallback body of §6.
    b2.send(&format!(
        "<message to='{r}' type='groupchat' id='r1'><retract xmlns='{RETRACT}' id='{id}'/>\
         <fallback xmlns='urn:xmpp:fallback:0' for='{RETRACT}'/>\
         <body>/me retracted a previous message</body></message>"
    ))
    .await;
    for c in [&mut a, &mut b1] {
        c.expect("the author's retraction", |e| is_retraction_of(e, &id))
            .await;
    }
    let rows = archive(&mut a, Some(&r)).await;
    let t = find(&rows, &id);
    assert!(body(t).is_none(), "{t:?}");
    let retracted = t.get_child("retracted", RETRACT).unwrap();
    assert!(!retracted.has_child("moderated", MODERATE));
    let mine = archive(&mut b1, None).await;
    assert!(body(find(&mine, &id)).is_none());
    // alice's own copy too (she is an account occupant as well).
    let hers = archive(&mut a, None).await;
    assert!(body(find(&hers, &id)).is_none());
}

#[tokio::test]
async fn nobody_retracts_someone_elses_message_as_its_author() {
    let s = TestServer::start().await;
    let (mut a, mut b1, _b2, r) = room_with_bob(&s, "notyours").await;
    a.say(&r, "mine").await;
    let seen = b1.expect_groupchat("mine").await;
    let id = stanza_id(&seen, &r);
    b1.send(&format!(
        "<message to='{r}' type='groupchat' id='r2'><retract xmlns='{RETRACT}' id='{id}'/>\
         <body>/me retracted a previous message</body></message>"
    ))
    .await;
    a.expect("bob's attempt", |e| is_retraction_of(e, &id))
        .await;
    let rows = archive(&mut a, Some(&r)).await;
    assert_eq!(body(find(&rows, &id)).as_deref(), Some("mine"));
    let mine = archive(&mut b1, None).await;
    assert_eq!(body(find(&mine, &id)).as_deref(), Some("mine"));
}
