//! ACCOUNT-MUC.md against Roost's own MUC service: three sessions of one
//! account and two other accounts in a room; a kick racing a join;
//! bookmarks with autojoin as persistent membership, across a restart, with
//! the nick written back.

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::muc::{has_status, room};
use roost_testkit::{Client, TestServer};

const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";

async fn people(s: &TestServer) {
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
}

async fn session(s: &TestServer, user: &str, res: &str) -> Client {
    let mut c = s.login(user, res).await;
    c.available().await;
    c
}

fn from_nick(room: &str, nick: &str) -> impl Fn(&Element) -> bool {
    let occupant = format!("{room}/{nick}");
    move |e| e.name() == "presence" && e.attr("from") == Some(occupant.as_str())
}

fn show(e: &Element) -> Option<String> {
    e.get_child("show", "jabber:client").map(|s| s.text())
}

async fn bookmark(c: &mut Client, room: &str, nick: &str, autojoin: bool) {
    let r = c
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{BOOKMARKS}'><item id='{room}'>\
                 <conference xmlns='{BOOKMARKS}' name='Lobby' autojoin='{autojoin}'><nick>{nick}</nick></conference>\
                 </item></publish></pubsub>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

async fn bookmarked_nick(c: &mut Client, room: &str) -> Option<String> {
    let r = c
        .iq("get", None, &format!("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{BOOKMARKS}'/></pubsub>"))
        .await;
    let items = r
        .get_child("pubsub", "http://jabber.org/protocol/pubsub")?
        .get_child("items", "http://jabber.org/protocol/pubsub")?;
    let item = items.children().find(|i| i.attr("id") == Some(room))?;
    item.get_child("conference", BOOKMARKS)?
        .get_child("nick", BOOKMARKS)
        .map(|n| n.text())
}

#[tokio::test]
async fn three_sessions_are_one_occupant_and_each_joined_one_gets_each_message_once() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("lobby");
    let mut b = session(&s, "bob", "desk").await;
    b.create_room(&lobby, "Bob").await;
    let mut c = session(&s, "carol", "x").await;
    c.join_room(&lobby, "Carol").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    let mut a3 = session(&s, "alice", "three").await;
    let mut idle = session(&s, "alice", "idle").await;
    for a in [&mut a1, &mut a2, &mut a3] {
        a.join_room(&lobby, "Al").await;
    }
    // Bob saw alice join once, and nothing else from her.
    b.expect("Al joined", from_nick(&lobby, "Al")).await;
    assert!(b
        .gets_within(Duration::from_millis(400), from_nick(&lobby, "Al"))
        .await
        .is_none());
    b.say(&lobby, "hello everyone").await;
    for a in [&mut a1, &mut a2, &mut a3] {
        a.expect_groupchat("hello everyone").await;
        assert!(a
            .gets_within(Duration::from_millis(150), |e| body(e).as_deref()
                == Some("hello everyone"))
            .await
            .is_none());
    }
    assert!(idle
        .gets_within(Duration::from_millis(200), |e| e
            .attr("from")
            .is_some_and(|f| f.starts_with(&lobby)))
        .await
        .is_none());
    // The room's real JID for Al is the bare account.
    let counters = s.running.server.counters.snapshot();
    assert!(counters
        .iter()
        .any(|(k, v)| *k == "account_muc_forked" && *v >= 3));
}

#[tokio::test]
async fn a_kick_reaches_every_joined_session_of_the_account() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("lobby");
    let mut b = session(&s, "bob", "desk").await;
    b.create_room(&lobby, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    a1.join_room(&lobby, "Al").await;
    a2.join_room(&lobby, "Al").await;
    b.expect("Al joined", from_nick(&lobby, "Al")).await;
    let r = b
        .admin_set(
            &lobby,
            "<item nick='Al' role='none'><reason>out</reason></item>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    for a in [&mut a1, &mut a2] {
        let k = a
            .expect("kick", |e| {
                e.attr("type") == Some("unavailable") && has_status(e, 307)
            })
            .await;
        assert!(has_status(&k, 110));
    }
    b.expect("Al kicked", |e| {
        e.attr("type") == Some("unavailable") && has_status(e, 307)
    })
    .await;
    // Not rejoined by itself.
    let al = from_nick(&lobby, "Al");
    assert!(b
        .gets_within(Duration::from_millis(500), move |e| e
            .attr("type")
            .is_none()
            && al(e))
        .await
        .is_none());
}

#[tokio::test]
async fn a_kick_racing_a_join_leaves_a_consistent_state() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("lobby");
    let mut b = session(&s, "bob", "desk").await;
    b.create_room(&lobby, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    a1.join_room(&lobby, "Al").await;
    let mut a2 = session(&s, "alice", "two").await;
    b.send(&format!("<iq type='set' to='{lobby}' id='kick'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Al' role='none'/></query></iq>")).await;
    a2.send(&format!(
        "<presence to='{lobby}/Al'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Whatever the order, a2's last word from the room matches the room's view.
    let mut a2_in = false;
    while let Some(e) = a2
        .gets_within(Duration::from_millis(100), |e| {
            e.name() == "presence" && e.attr("from") == Some(format!("{lobby}/Al").as_str())
        })
        .await
    {
        a2_in = e.attr("type").is_none();
    }
    let mut room_has_al = false;
    while let Some(e) = b
        .gets_within(Duration::from_millis(100), from_nick(&lobby, "Al"))
        .await
    {
        room_has_al = e.attr("type").is_none();
    }
    assert_eq!(a2_in, room_has_al, "session and room disagree");
}

#[tokio::test]
async fn an_autojoin_bookmark_is_a_persistent_membership() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("lobby");
    let mut b = session(&s, "bob", "desk").await;
    b.create_room(&lobby, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    bookmark(&mut a1, &lobby, "Al", true).await;
    // The account joins at once, with no session joined: shown as xa.
    let p = b.expect("Al joined", from_nick(&lobby, "Al")).await;
    assert_eq!(show(&p).as_deref(), Some("xa"));
    // A session joining is answered from state; the room sees only the presence change.
    a1.join_room(&lobby, "Al").await;
    let p = b.expect("Al available", from_nick(&lobby, "Al")).await;
    assert_eq!(show(&p), None);
    // The session leaving does not take the account out: back to xa.
    a1.leave_room(&lobby, "Al").await;
    let p = b.expect("Al xa again", from_nick(&lobby, "Al")).await;
    assert_eq!(p.attr("type"), None);
    assert_eq!(show(&p).as_deref(), Some("xa"));
    // Messages said meanwhile reach the account's archive.
    b.say(&lobby, "while you were away").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = a1.new_id();
    a1.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2'/></iq>"
    ))
    .await;
    let mut bodies = Vec::new();
    loop {
        let e = a1.recv().await;
        if e.attr("id") == Some(id.as_str()) {
            break;
        }
        if let Some(m) = e
            .get_child("result", "urn:xmpp:mam:2")
            .and_then(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
            .and_then(|f| f.get_child("message", "jabber:client"))
        {
            bodies.push(body(m).unwrap_or_default());
        }
    }
    assert!(
        bodies.contains(&"while you were away".to_string()),
        "{bodies:?}"
    );
    // Clearing autojoin makes the account leave, since no session is joined.
    bookmark(&mut a1, &lobby, "Al", false).await;
    let p = b.expect("Al leaves", from_nick(&lobby, "Al")).await;
    assert_eq!(p.attr("type"), Some("unavailable"));
}

#[tokio::test]
async fn bookmarked_rooms_are_joined_again_after_a_restart() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("lobby");
    let mut b = session(&s, "bob", "desk").await;
    b.create_configured_room(&lobby, "Bob", &[("muc#roomconfig_persistentroom", "1")])
        .await;
    let mut a1 = session(&s, "alice", "one").await;
    bookmark(&mut a1, &lobby, "Al", true).await;
    b.expect("Al joined", from_nick(&lobby, "Al")).await;
    a1.close().await;
    b.close().await;
    let s = s.restart().await;
    // Nobody of alice's is online; bob rejoins and finds Al in the room.
    let mut b = session(&s, "bob", "desk").await;
    let mut found = false;
    for _ in 0..20 {
        b.send(&format!(
            "<presence to='{lobby}/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
        let mut seen_al = false;
        loop {
            let e = b.recv().await;
            if from_nick(&lobby, "Al")(&e) && e.attr("type").is_none() {
                seen_al = true;
            }
            if e.name() == "message" && e.has_child("subject", "jabber:client") {
                break;
            }
        }
        if seen_al {
            found = true;
            break;
        }
        b.send(&format!("<presence to='{lobby}/Bob' type='unavailable'/>"))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(found, "the bookmarked room was not rejoined at start");
}

#[tokio::test]
async fn a_nick_change_in_a_bookmarked_room_is_written_back() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("lobby");
    let mut b = session(&s, "bob", "desk").await;
    b.create_room(&lobby, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    bookmark(&mut a1, &lobby, "Al", true).await;
    b.expect("Al joined", from_nick(&lobby, "Al")).await;
    a1.join_room(&lobby, "Al").await;
    a1.send(&format!("<presence to='{lobby}/Alicia'/>")).await;
    a1.expect("303", |e| has_status(e, 303)).await;
    let mut nick = None;
    for _ in 0..20 {
        nick = bookmarked_nick(&mut a1, &lobby).await;
        if nick.as_deref() == Some("Alicia") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(nick.as_deref(), Some("Alicia"));
}

#[tokio::test]
async fn a_later_session_gets_the_rooms_lasting_codes_and_no_201_once_configured() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("fresh");
    let mut a1 = session(&s, "alice", "one").await;
    let first = a1.join_room(&lobby, "Al").await;
    assert!(has_status(&first, 201));
    // (While it is still locked a later session gets 201 too: account_muc_gaps.rs.)
    let r = a1
        .iq(
            "set",
            Some(&lobby),
            "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let mut a2 = session(&s, "alice", "two").await;
    let later = a2.join_room(&lobby, "Al").await;
    assert!(has_status(&later, 110));
    assert!(!has_status(&later, 201), "{}", String::from(&later));
}

#[tokio::test]
async fn a_disco_of_the_occupants_caps_node_is_answered_by_a_joined_session() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("lobby");
    let mut b = session(&s, "bob", "desk").await;
    b.create_room(&lobby, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    a1.join_room(&lobby, "Al").await;
    b.send(&format!(
        "<iq type='get' id='caps' to='{lobby}/Al'><query xmlns='http://jabber.org/protocol/disco#info' node='http://client.example#abc'/></iq>"
    ))
    .await;
    let q = a1
        .expect("forwarded disco", |e| {
            e.name() == "iq" && e.attr("type") == Some("get")
        })
        .await;
    a1.send(&format!(
        "<iq type='result' id='{}' to='{}'><query xmlns='http://jabber.org/protocol/disco#info' node='http://client.example#abc'><feature var='urn:example:x'/></query></iq>",
        q.attr("id").unwrap(),
        q.attr("from").unwrap()
    ))
    .await;
    let r = b.expect("answer", |e| e.attr("id") == Some("caps")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert!(String::from(&r).contains("urn:example:x"));
}

#[tokio::test]
async fn room_destruction_reaches_every_joined_session_and_clears_the_state() {
    let s = TestServer::start().await;
    people(&s).await;
    let lobby = room("doomed");
    let mut b = session(&s, "bob", "desk").await;
    b.create_room(&lobby, "Bob").await;
    let mut a1 = session(&s, "alice", "one").await;
    let mut a2 = session(&s, "alice", "two").await;
    a1.join_room(&lobby, "Al").await;
    a2.join_room(&lobby, "Al").await;
    let r = b
        .iq(
            "set",
            Some(&lobby),
            "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy><reason>closing</reason></destroy></query>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    for a in [&mut a1, &mut a2] {
        let p = a
            .expect("destroyed", |e| {
                e.attr("type") == Some("unavailable") && String::from(e).contains("destroy")
            })
            .await;
        assert_eq!(p.attr("from"), Some(format!("{lobby}/Al").as_str()));
    }
    // The account's state is gone: joining again really creates the room anew.
    let again = a1.join_room(&lobby, "Al").await;
    assert!(has_status(&again, 201), "{}", String::from(&again));
}
