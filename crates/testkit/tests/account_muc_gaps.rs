//! ACCOUNT-MUC.md against the local MUC service, for gaps real clients hit:
//! a session that did not join is told it is out (not-acceptable), the
//! room sees the aggregate of the joined sessions' presence (rule 7), room
//! private messages reach every device and the personal archive once, and
//! a room left locked by one session is offered for configuration (201) to
//! the next, and destroyed if nobody configures it (`[muc] lock_timeout`).

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::muc::{error_condition, has_status, room, MUC_OWNER};
use roost_testkit::{Client, TestServer};

const QUIET: Duration = Duration::from_millis(600);

async fn session(s: &TestServer, user: &str, res: &str) -> Client {
    let mut c = s.login(user, res).await;
    c.available().await;
    c
}

fn presence_of(occupant: &str) -> impl Fn(&Element) -> bool + '_ {
    move |e| e.name() == "presence" && e.attr("from") == Some(occupant)
}

fn show(e: &Element) -> Option<String> {
    e.get_child("show", "jabber:client").map(|s| s.text())
}

fn status(e: &Element) -> Option<String> {
    e.get_child("status", "jabber:client").map(|s| s.text())
}

/// alice (phone, laptop) and bob in one configured room.
async fn room_with_two_devices(s: &TestServer, name: &str) -> (String, Client, Client, Client) {
    for u in ["alice", "bob"] {
        s.user(u).await;
    }
    let r = room(name);
    let mut phone = session(s, "alice", "phone").await;
    phone.create_room(&r, "Al").await;
    let mut laptop = session(s, "alice", "laptop").await;
    laptop.join_room(&r, "Al").await;
    let mut bob = session(s, "bob", "desk").await;
    bob.join_room(&r, "Bob").await;
    // The one occupant presence of alice's account, from the join sequence.
    bob.expect("alice's presence", presence_of(&format!("{r}/Al")))
        .await;
    phone
        .expect("bob joined", presence_of(&format!("{r}/Bob")))
        .await;
    laptop
        .expect("bob joined", presence_of(&format!("{r}/Bob")))
        .await;
    (r, phone, laptop, bob)
}

#[tokio::test]
async fn a_groupchat_from_a_session_that_did_not_join_is_not_acceptable_and_stays_out() {
    let s = TestServer::start().await;
    let (r, _phone, _laptop, mut bob) = room_with_two_devices(&s, "deaf").await;
    let mut tablet = session(&s, "alice", "tablet").await;
    tablet
        .send(&format!(
            "<message to='{r}' type='groupchat' id='g1'><body>lost</body></message>"
        ))
        .await;
    let e = tablet
        .expect("error", |e| {
            e.name() == "message" && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
    assert_eq!(e.attr("from"), Some(r.as_str()));
    assert_eq!(e.attr("id"), Some("g1"));
    // A private message to an occupant is refused the same way.
    tablet
        .send(&format!(
            "<message to='{r}/Bob' type='chat' id='p1'><body>psst</body></message>"
        ))
        .await;
    let e = tablet
        .expect("error", |e| {
            e.name() == "message" && e.attr("id") == Some("p1")
        })
        .await;
    assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
    assert!(bob
        .gets_within(QUIET, |e| e.name() == "message"
            && matches!(body(e).as_deref(), Some("lost") | Some("psst")))
        .await
        .is_none());
}

#[tokio::test]
async fn the_room_sees_away_once_every_joined_session_is_away() {
    let s = TestServer::start().await;
    let (r, mut phone, mut laptop, mut bob) = room_with_two_devices(&s, "aggregate").await;
    let al = format!("{r}/Al");
    phone
        .send("<presence><show>away</show><status>phone away</status></presence>")
        .await;
    // The laptop is still available: the room sees no change.
    assert!(bob.gets_within(QUIET, presence_of(&al)).await.is_none());
    laptop
        .send("<presence><show>away</show><status>lunch</status></presence>")
        .await;
    let p = bob.expect("alice away", presence_of(&al)).await;
    assert_eq!(show(&p).as_deref(), Some("away"));
    assert_eq!(
        status(&p).as_deref(),
        Some("lunch"),
        "the latest change wins"
    );
    // Equal availability: the most recent change wins, with its text.
    phone
        .send("<presence><show>away</show><status>on the train</status></presence>")
        .await;
    let p = bob.expect("new status", presence_of(&al)).await;
    assert_eq!(status(&p).as_deref(), Some("on the train"));
    // Back to available from one device.
    laptop.send("<presence/>").await;
    let p = bob.expect("alice back", presence_of(&al)).await;
    assert_eq!(show(&p), None);
    let _ = phone;
}

#[tokio::test]
async fn room_private_messages_reach_every_device_and_the_archive_once() {
    let s = TestServer::start().await;
    let (r, mut phone, mut laptop, mut bob) = room_with_two_devices(&s, "pm").await;
    for c in [&mut phone, &mut laptop] {
        let res = c
            .iq("set", None, "<enable xmlns='urn:xmpp:carbons:2'/>")
            .await;
        assert_eq!(res.attr("type"), Some("result"));
    }
    // bob -> Al: both joined sessions get it.
    bob.send(&format!(
        "<message to='{r}/Al' type='chat' id='in1'><body>to alice</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>"
    ))
    .await;
    for c in [&mut phone, &mut laptop] {
        let m = c
            .expect("pm", |e| body(e).as_deref() == Some("to alice"))
            .await;
        assert_eq!(m.attr("from"), Some(format!("{r}/Bob").as_str()));
    }
    // phone -> Bob: the laptop gets a sent carbon; bob gets it once.
    phone
        .send(&format!(
            "<message to='{r}/Bob' type='chat' id='out1'><body>to bob</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>"
        ))
        .await;
    let m = bob
        .expect("pm", |e| body(e).as_deref() == Some("to bob"))
        .await;
    assert_eq!(m.attr("from"), Some(format!("{r}/Al").as_str()));
    let carbon = laptop
        .expect("sent carbon", |e| e.has_child("sent", "urn:xmpp:carbons:2"))
        .await;
    let inner = carbon
        .get_child("sent", "urn:xmpp:carbons:2")
        .and_then(|s| s.get_child("forwarded", "urn:xmpp:forward:0"))
        .and_then(|f| f.get_child("message", "jabber:client"))
        .expect("forwarded message");
    assert_eq!(body(inner).as_deref(), Some("to bob"));
    assert!(phone
        .gets_within(QUIET, |e| e.has_child("sent", "urn:xmpp:carbons:2"))
        .await
        .is_none());
    // The personal archive has each PM once, with the occupant's JID.
    let q = laptop
        .iq(
            "set",
            None,
            &format!(
                "<query xmlns='urn:xmpp:mam:2' queryid='q1'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
                 <field var='with'><value>{r}/Bob</value></field></x></query>"
            ),
        )
        .await;
    assert_eq!(q.attr("type"), Some("result"), "{}", String::from(&q));
    let mut found = Vec::new();
    while let Some(m) = laptop
        .gets_within(Duration::from_millis(50), |e| {
            e.get_child("result", "urn:xmpp:mam:2").is_some()
        })
        .await
    {
        let inner = m
            .get_child("result", "urn:xmpp:mam:2")
            .and_then(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
            .and_then(|f| f.get_child("message", "jabber:client"))
            .and_then(body);
        found.push(inner.unwrap_or_default());
    }
    found.sort();
    assert_eq!(found, vec!["to alice".to_string(), "to bob".to_string()]);
}

#[tokio::test]
async fn a_later_session_of_the_owner_gets_201_while_the_room_is_locked() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let r = room("locked");
    let mut phone = session(&s, "alice", "phone").await;
    let own = phone.join_room(&r, "Al").await;
    assert!(has_status(&own, 201));
    let mut laptop = session(&s, "alice", "laptop").await;
    let own = laptop.join_room(&r, "Al").await;
    assert!(has_status(&own, 201), "{}", String::from(&own));
    // Others cannot enter yet.
    let mut bob = session(&s, "bob", "desk").await;
    let e = bob.join_room_with(&r, "Bob", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("item-not-found"));
    // The laptop configures it (instant room); the next session gets no 201.
    let res = laptop
        .iq(
            "set",
            Some(&r),
            &format!("<query xmlns='{MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let mut tablet = session(&s, "alice", "tablet").await;
    let own = tablet.join_room(&r, "Al").await;
    assert!(!has_status(&own, 201), "{}", String::from(&own));
    bob.join_room(&r, "Bob").await;
}

#[tokio::test]
async fn an_unconfigured_room_is_destroyed_after_the_lock_timeout() {
    let s = TestServer::start_with(|c| c.muc.lock_timeout = 1).await;
    s.user("alice").await;
    let r = room("forgotten");
    let mut phone = session(&s, "alice", "phone").await;
    let own = phone.join_room(&r, "Al").await;
    assert!(has_status(&own, 201));
    let gone = phone
        .expect("destroyed", |e| {
            e.name() == "presence"
                && e.attr("type") == Some("unavailable")
                && e.get_child("x", "http://jabber.org/protocol/muc#user")
                    .is_some_and(|x| {
                        x.get_child("destroy", "http://jabber.org/protocol/muc#user")
                            .is_some()
                    })
        })
        .await;
    assert_eq!(gone.attr("from"), Some(format!("{r}/Al").as_str()));
}

#[tokio::test]
async fn with_lock_new_rooms_off_a_new_room_is_open_at_once() {
    let s = TestServer::start_with(|c| c.muc.lock_new_rooms = false).await;
    s.user("alice").await;
    s.user("bob").await;
    let r = room("instant");
    let mut a = session(&s, "alice", "phone").await;
    a.join_room(&r, "Al").await;
    let mut bob = session(&s, "bob", "desk").await;
    let own = bob.join_room(&r, "Bob").await;
    assert!(has_status(&own, 110));
}
