//! ACCOUNT-MUC.md rules against a room on another domain (the testkit's
//! scripted room service), so nothing here relies on the room being local:
//! the room sees one occupant per account and sends it one copy of
//! everything, and the server forks it to the sessions that joined.

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::fake_room::FakeRooms;
use roost_testkit::{Client, TestServer};

const ROOM: &str = "lobby@rooms.remote.example";
const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

async fn setup() -> (TestServer, FakeRooms) {
    setup_with(|_| {}).await
}

async fn setup_with(tweak: impl FnOnce(&mut roost_server::Config)) -> (TestServer, FakeRooms) {
    let s = TestServer::start_with(tweak).await;
    let rooms = FakeRooms::install(&s.running.server, "rooms.remote.example");
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
    (s, rooms)
}

async fn session(s: &TestServer, user: &str, res: &str) -> Client {
    let mut c = s.login(user, res).await;
    c.available().await;
    c
}

fn codes(p: &Element) -> Vec<String> {
    p.get_child("x", MUC_USER)
        .map(|x| {
            x.children()
                .filter_map(|c| c.attr("code").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn self_presence(p: &Element) -> bool {
    p.name() == "presence" && codes(p).contains(&"110".to_string())
}

fn from_room(e: &Element) -> bool {
    e.attr("from").is_some_and(|f| f.starts_with(ROOM))
}

/// Join and wait for the self-presence and the subject.
async fn join(c: &mut Client, nick: &str) -> Element {
    c.send(&format!(
        "<presence to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    let me = c
        .expect("self-presence", |e| {
            self_presence(e) && e.attr("type").is_none()
        })
        .await;
    c.expect("subject", |e| {
        e.name() == "message" && e.has_child("subject", "jabber:client")
    })
    .await;
    me
}

async fn say(c: &mut Client, text: &str) {
    c.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='{text}'><body>{text}</body></message>"
    ))
    .await;
}

fn groupchat(text: &'static str) -> impl Fn(&Element) -> bool {
    move |e| {
        e.name() == "message"
            && e.attr("type") == Some("groupchat")
            && body(e).as_deref() == Some(text)
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(250)).await;
}

#[tokio::test]
async fn first_join_goes_out_from_the_bare_jid_and_answers_the_session() {
    let (s, rooms) = setup().await;
    let mut a1 = session(&s, "alice", "one").await;
    let me = join(&mut a1, "Al").await;
    assert_eq!(me.attr("to"), Some(a1.jid.as_str()));
    assert_eq!(me.attr("from"), Some(format!("{ROOM}/Al").as_str()));
    assert!(codes(&me).contains(&"201".to_string()));
    assert_eq!(
        rooms.occupants(ROOM).get("Al").map(String::as_str),
        Some("alice@localhost")
    );
}

#[tokio::test]
async fn a_join_error_reaches_every_pending_session_and_leaves_nothing_behind() {
    let (s, rooms) = setup().await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Al").await;
    let mut a1 = session(&s, "alice", "one").await;
    a1.send(&format!(
        "<presence to='{ROOM}/Al'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    let e = a1
        .expect("error", |e| {
            e.name() == "presence" && e.attr("type") == Some("error")
        })
        .await;
    assert!(e
        .get_child("error", "jabber:client")
        .unwrap()
        .has_child("conflict", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    // Nothing left behind: a new attempt with another nick goes to the room.
    join(&mut a1, "Alice").await;
    assert_eq!(rooms.occupants(ROOM).len(), 2);
}

#[tokio::test]
async fn two_sessions_joining_at_once_make_one_occupant() {
    let (s, rooms) = setup().await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    let j =
        format!("<presence to='{ROOM}/Al'><x xmlns='http://jabber.org/protocol/muc'/></presence>");
    a1.send(&j).await;
    a2.send(&j).await;
    a1.expect("self", self_presence).await;
    a2.expect("self", self_presence).await;
    settle().await;
    assert_eq!(rooms.occupants(ROOM).len(), 1);
}

#[tokio::test]
async fn a_later_join_is_answered_from_state_with_history_and_subject() {
    let (s, rooms) = setup().await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    join(&mut a1, "Al").await;
    say(&mut b, "before").await;
    a1.expect("before", groupchat("before")).await;
    let sent_before = rooms.sent_to("alice@localhost");
    let mut a2 = session(&s, "alice", "two").await;
    a2.send(&format!("<presence to='{ROOM}/Other'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='5'/></x></presence>")).await;
    // Bob's presence, then our own (with 210: the account's nick is Al), history, subject.
    let bob = a2
        .expect("bob", |e| {
            e.name() == "presence" && e.attr("from") == Some(format!("{ROOM}/Bob").as_str())
        })
        .await;
    assert!(!self_presence(&bob));
    let me = a2.expect("self", self_presence).await;
    assert_eq!(me.attr("from"), Some(format!("{ROOM}/Al").as_str()));
    assert!(codes(&me).contains(&"210".to_string()), "{:?}", codes(&me));
    let h = a2.expect("history", groupchat("before")).await;
    assert!(h.has_child("delay", "urn:xmpp:delay"));
    a2.expect("subject", |e| e.has_child("subject", "jabber:client"))
        .await;
    settle().await;
    // Nothing went to the room for this join, and nothing came back.
    assert_eq!(rooms.sent_to("alice@localhost"), sent_before);
    assert_eq!(rooms.occupants(ROOM).len(), 2);
}

#[tokio::test]
async fn room_traffic_reaches_each_joined_session_once_and_no_one_else() {
    let (s, rooms) = setup().await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    let mut a3 = session(&s, "alice", "three").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al").await;
    let before = rooms.sent_to("alice@localhost");
    for text in ["m1", "m2", "m3"] {
        b.send(&format!(
            "<message to='{ROOM}' type='groupchat'><body>{text}</body></message>"
        ))
        .await;
    }
    for c in [&mut a1, &mut a2] {
        for text in ["m1", "m2", "m3"] {
            let want = text.to_string();
            c.expect(text, move |e| body(e).as_deref() == Some(want.as_str()))
                .await;
        }
        assert!(
            c.gets_within(Duration::from_millis(200), groupchat("m1"))
                .await
                .is_none(),
            "duplicate"
        );
    }
    assert!(a3
        .gets_within(Duration::from_millis(200), from_room)
        .await
        .is_none());
    // One stanza per message for the account, whatever its sessions.
    assert_eq!(rooms.sent_to("alice@localhost") - before, 3);
}

#[tokio::test]
async fn sending_leaves_from_the_bare_jid_and_the_reflection_reaches_all_joined_sessions() {
    let (s, _rooms) = setup().await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al").await;
    a1.send(&format!("<message to='{ROOM}' type='groupchat' id='x1'><body>hi all</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>")).await;
    for c in [&mut a1, &mut a2] {
        let m = c.expect("reflection", groupchat("hi all")).await;
        assert_eq!(m.attr("id"), Some("x1"));
        assert_eq!(m.attr("from"), Some(format!("{ROOM}/Al").as_str()));
        assert_eq!(
            m.get_child("origin-id", "urn:xmpp:sid:0")
                .unwrap()
                .attr("id"),
            Some("o1")
        );
    }
    b.expect("bob sees it", groupchat("hi all")).await;
}

#[tokio::test]
async fn an_iq_answer_returns_to_the_asking_session_only_and_self_ping_is_answered() {
    let (s, _rooms) = setup().await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al").await;
    let r = a2
        .iq(
            "get",
            Some(ROOM),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert!(a1
        .gets_within(Duration::from_millis(200), |e| e.name() == "iq")
        .await
        .is_none());
    let ping = a1
        .iq(
            "get",
            Some(&format!("{ROOM}/Al")),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await;
    assert_eq!(ping.attr("type"), Some("result"));
}

#[tokio::test]
async fn the_room_sees_the_most_available_joined_session() {
    let (s, _rooms) = setup().await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al").await;
    let al = format!("{ROOM}/Al");
    let al1 = al.clone();
    b.expect("Al joined", move |e| {
        e.name() == "presence" && e.attr("from") == Some(al1.as_str())
    })
    .await;
    let show_of = |e: &Element| e.get_child("show", "jabber:client").map(|s| s.text());
    a1.send(&format!("<presence to='{al}'><show>away</show></presence>"))
        .await;
    a1.send("<presence><show>away</show></presence>").await;
    // a2 is still plainly available: the room sees no change.
    let al2 = al.clone();
    assert!(b
        .gets_within(Duration::from_millis(300), move |e| e.name() == "presence"
            && e.attr("from") == Some(al2.as_str()))
        .await
        .is_none());
    a2.send(&format!("<presence to='{ROOM}/Al' type='unavailable'/>"))
        .await;
    let al3 = al.clone();
    let p = b
        .expect("Al now away", move |e| {
            e.name() == "presence" && e.attr("from") == Some(al3.as_str())
        })
        .await;
    assert_eq!(show_of(&p).as_deref(), Some("away"));
}

#[tokio::test]
async fn a_leaving_session_gets_its_unavailable_and_the_last_one_takes_the_account_out() {
    let (s, rooms) = setup().await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al").await;
    a2.send(&format!("<presence to='{ROOM}/Al' type='unavailable'/>"))
        .await;
    let bye = a2
        .expect("own unavailable", |e| {
            self_presence(e) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(bye.attr("from"), Some(format!("{ROOM}/Al").as_str()));
    say(&mut b, "after").await;
    a1.expect("a1 still in", groupchat("after")).await;
    assert!(a2
        .gets_within(Duration::from_millis(200), groupchat("after"))
        .await
        .is_none());
    assert_eq!(
        rooms.occupants(ROOM).len(),
        2,
        "the account stays while a1 is joined"
    );
    a1.send(&format!("<presence to='{ROOM}/Al' type='unavailable'/>"))
        .await;
    a1.expect("own unavailable", |e| {
        self_presence(e) && e.attr("type") == Some("unavailable")
    })
    .await;
    b.expect("Al leaves", |e| {
        e.attr("from") == Some(format!("{ROOM}/Al").as_str())
            && e.attr("type") == Some("unavailable")
    })
    .await;
    settle().await;
    assert_eq!(rooms.occupants(ROOM).len(), 1);
}

#[tokio::test]
async fn a_session_that_ends_leaves_its_rooms_but_a_resumable_one_keeps_them() {
    let (s, rooms) = setup().await;
    let mut a1 = session(&s, "alice", "one").await;
    join(&mut a1, "Al").await;
    a1.enable_sm().await;
    a1.drop_connection();
    settle().await;
    assert_eq!(rooms.occupants(ROOM).len(), 1, "resumable: still in");
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a2, "Al").await;
    a2.close().await;
    settle().await;
    assert_eq!(rooms.occupants(ROOM).len(), 1, "a1 still holds the room");
}

#[tokio::test]
async fn the_last_session_ending_takes_the_account_out() {
    let (s, rooms) = setup().await;
    let mut a1 = session(&s, "alice", "one").await;
    join(&mut a1, "Al").await;
    a1.close().await;
    settle().await;
    assert!(rooms.occupants(ROOM).is_empty());
}

#[tokio::test]
async fn others_coming_and_going_are_mirrored_for_later_joins() {
    let (s, _rooms) = setup().await;
    let mut a1 = session(&s, "alice", "one").await;
    join(&mut a1, "Al").await;
    let mut c = session(&s, "carol", "x").await;
    join(&mut c, "Carol").await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Bob").await;
    c.send(&format!("<presence to='{ROOM}/Carol' type='unavailable'/>"))
        .await;
    a1.expect("carol leaves", |e| {
        e.attr("from") == Some(format!("{ROOM}/Carol").as_str())
            && e.attr("type") == Some("unavailable")
    })
    .await;
    let mut a2 = session(&s, "alice", "two").await;
    a2.send(&format!(
        "<presence to='{ROOM}/Al'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    let mut seen = Vec::new();
    loop {
        let e = a2.recv().await;
        if e.name() == "presence" && from_room(&e) {
            if self_presence(&e) {
                break;
            }
            seen.push(e.attr("from").unwrap_or_default().to_string());
        }
    }
    assert_eq!(seen, [format!("{ROOM}/Bob")]);
}

#[tokio::test]
async fn a_kick_reaches_every_joined_session_and_is_not_undone() {
    let (s, rooms) = setup().await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al").await;
    rooms.kick(&s.running.server, ROOM, "Al");
    for c in [&mut a1, &mut a2] {
        let k = c
            .expect("kick", |e| {
                self_presence(e) && e.attr("type") == Some("unavailable")
            })
            .await;
        assert!(codes(&k).contains(&"307".to_string()));
    }
    settle().await;
    assert!(rooms.occupants(ROOM).is_empty());
    // The state is gone: a new join really goes to the room.
    join(&mut a1, "Al").await;
    assert_eq!(rooms.occupants(ROOM).len(), 1);
}

#[tokio::test]
async fn a_nick_change_reaches_all_sessions_and_its_error_only_the_asker() {
    let (s, _rooms) = setup().await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al").await;
    a1.send(&format!("<presence to='{ROOM}/Bob'/>")).await;
    a1.expect("conflict", |e| e.attr("type") == Some("error"))
        .await;
    assert!(a2
        .gets_within(Duration::from_millis(300), |e| e.attr("type")
            == Some("error"))
        .await
        .is_none());
    a1.send(&format!("<presence to='{ROOM}/Alice'/>")).await;
    for c in [&mut a1, &mut a2] {
        let gone = c
            .expect("303", |e| codes(e).contains(&"303".to_string()))
            .await;
        assert_eq!(gone.attr("from"), Some(format!("{ROOM}/Al").as_str()));
        c.expect("new nick", |e| {
            e.attr("from") == Some(format!("{ROOM}/Alice").as_str()) && self_presence(e)
        })
        .await;
    }
    // A later session joins under the new nick.
    let mut a3 = session(&s, "alice", "three").await;
    let me = join(&mut a3, "Al").await;
    assert_eq!(me.attr("from"), Some(format!("{ROOM}/Alice").as_str()));
}

#[tokio::test]
async fn groupchat_is_archived_once_in_the_account_archive() {
    let (s, _rooms) = setup().await;
    let mut b = session(&s, "bob", "desk").await;
    join(&mut b, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al").await;
    say(&mut b, "keep me").await;
    a1.expect("m", groupchat("keep me")).await;
    a2.expect("m", groupchat("keep me")).await;
    let id = a1.new_id();
    a1.send(&format!("<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>{ROOM}</value></field></x></query></iq>")).await;
    let mut found = Vec::new();
    loop {
        let e = a1.recv().await;
        if e.attr("id") == Some(id.as_str()) {
            break;
        }
        if let Some(r) = e.get_child("result", "urn:xmpp:mam:2") {
            found.push(r.attr("id").unwrap().to_string());
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("fake-"),
        "the room's stanza-id is kept: {found:?}"
    );
}

#[tokio::test]
async fn a_room_that_lost_the_account_is_rejoined_transparently() {
    let (s, rooms) = setup_with(|c| c.account_muc.self_ping_interval = 1).await;
    let mut a1 = session(&s, "alice", "one").await;
    join(&mut a1, "Al").await;
    rooms.forget(ROOM, "Al");
    assert!(rooms.occupants(ROOM).is_empty());
    let mut back = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if rooms.occupants(ROOM).get("Al").map(String::as_str) == Some("alice@localhost") {
            back = true;
            break;
        }
    }
    assert!(back, "the account was not rejoined");
    // The session was never told it left.
    assert!(a1
        .gets_within(Duration::from_millis(300), |e| e.attr("type")
            == Some("unavailable")
            || e.attr("type") == Some("error"))
        .await
        .is_none());
}

#[tokio::test]
async fn with_the_feature_off_each_session_joins_on_its_own() {
    let (s, rooms) = setup_with(|c| c.account_muc.enabled = false).await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    join(&mut a1, "Al").await;
    join(&mut a2, "Al2").await;
    let occ = rooms.occupants(ROOM);
    assert_eq!(
        occ.get("Al").map(String::as_str),
        Some("alice@localhost/one")
    );
    assert_eq!(
        occ.get("Al2").map(String::as_str),
        Some("alice@localhost/two")
    );
}

#[tokio::test]
async fn another_account_never_sees_this_accounts_room_state() {
    let (s, _rooms) = setup().await;
    let mut a1 = session(&s, "alice", "one").await;
    join(&mut a1, "Al").await;
    let mut b = session(&s, "bob", "desk").await;
    // Bob asks the account's occupant JID for a self-ping: the room answers
    // him as a non-occupant, not the server from alice's state.
    let r = b
        .iq(
            "get",
            Some(&format!("{ROOM}/Al")),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("error"));
    assert!(b
        .gets_within(Duration::from_millis(200), from_room)
        .await
        .is_none());
}

async fn bookmark(c: &mut Client, room: &str, nick: &str) {
    let r = c
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='{room}'>\
                 <conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>{nick}</nick></conference></item></publish></pubsub>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

async fn wait_for(rooms: &FakeRooms, present: bool) -> bool {
    for _ in 0..40 {
        if rooms.occupants(ROOM).contains_key("Al") == present {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_bookmarked_room_that_shut_down_is_joined_again_later() {
    let (s, rooms) = setup_with(|c| c.account_muc.self_ping_interval = 1).await;
    let mut a1 = session(&s, "alice", "one").await;
    bookmark(&mut a1, ROOM, "Al").await;
    assert!(wait_for(&rooms, true).await, "the bookmark did not join");
    rooms.shutdown(&s.running.server, ROOM);
    assert!(rooms.occupants(ROOM).is_empty());
    assert!(
        wait_for(&rooms, true).await,
        "not rejoined after the shutdown"
    );
}

#[tokio::test]
async fn a_kick_from_a_bookmarked_room_is_not_undone() {
    let (s, rooms) = setup_with(|c| c.account_muc.self_ping_interval = 1).await;
    let mut a1 = session(&s, "alice", "one").await;
    bookmark(&mut a1, ROOM, "Al").await;
    assert!(wait_for(&rooms, true).await, "the bookmark did not join");
    rooms.kick(&s.running.server, ROOM, "Al");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !rooms.occupants(ROOM).contains_key("Al"),
        "rejoined after a kick"
    );
}
