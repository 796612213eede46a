//! XEP-0045 with several sessions of one user behind one nick (§7.2.9
//! refuses a nick only to another user), as clients joining on their own
//! do with account-based joining off and as remote users will: one
//! occupant, several real JIDs; and ghosts removed on delivery errors
//! (§18.1.3, status 333) without touching the user's other sessions.

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::muc::{self, error_condition, has_status, item, room, MUC_ADMIN};
use roost_testkit::{Client, TestServer};

const QUIET: Duration = Duration::from_millis(600);

async fn session(s: &TestServer, user: &str, res: &str) -> Client {
    let mut c = s.login(user, res).await;
    c.available().await;
    c
}

fn from_occupant(occupant: &str) -> impl Fn(&Element) -> bool + '_ {
    move |e| e.name() == "presence" && e.attr("from") == Some(occupant)
}

/// bob owns the room; alice's phone and laptop both join as "Al".
async fn shared_nick(s: &TestServer, name: &str) -> (String, Client, Client, Client) {
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
    let r = room(name);
    let mut bob = session(s, "bob", "desk").await;
    bob.create_room(&r, "Bob").await;
    let al = format!("{r}/Al");
    let mut phone = session(s, "alice", "phone").await;
    phone.join_room(&r, "Al").await;
    bob.expect("Al enters", from_occupant(&al)).await;
    let mut laptop = session(s, "alice", "laptop").await;
    let own = laptop.join_room(&r, "Al").await;
    assert!(has_status(&own, 110));
    assert_eq!(
        item(&own).and_then(|i| i.attr("jid")),
        Some("alice@localhost/laptop"),
        "a session's own presence names that session"
    );
    (r, bob, phone, laptop)
}

#[tokio::test]
async fn sessions_of_one_user_share_a_nick_and_others_see_one_occupant() {
    let s = muc::server().await;
    let (r, mut bob, mut phone, mut laptop) = shared_nick(&s, "shared").await;
    let al = format!("{r}/Al");
    // The second session with the same presence is no news to bob.
    assert!(bob.gets_within(QUIET, from_occupant(&al)).await.is_none());
    // Another user cannot take the nick.
    let mut carol = session(&s, "carol", "home").await;
    let e = carol.join_room_with(&r, "Al", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("conflict"));
    // Groupchat and private messages to the nick reach every session.
    bob.say(&r, "to the room").await;
    bob.send(&format!(
        "<message to='{al}' type='chat' id='pm'><body>to Al</body></message>"
    ))
    .await;
    for c in [&mut phone, &mut laptop] {
        c.expect_groupchat("to the room").await;
        c.expect("pm", |e| body(e).as_deref() == Some("to Al"))
            .await;
    }
    // Both sessions speak as Al.
    laptop.say(&r, "from the laptop").await;
    let m = bob.expect_groupchat("from the laptop").await;
    assert_eq!(m.attr("from"), Some(al.as_str()));
    phone.expect_groupchat("from the laptop").await;
}

#[tokio::test]
async fn the_most_available_session_is_shown_and_one_leaving_is_not_a_leave() {
    let s = muc::server().await;
    let (r, mut bob, mut phone, mut laptop) = shared_nick(&s, "avail").await;
    let al = format!("{r}/Al");
    phone
        .send(&format!("<presence to='{al}'><show>away</show></presence>"))
        .await;
    // The laptop is still available: bob sees nothing; the phone hears back.
    phone
        .expect("own update", |e| {
            from_occupant(&al)(e) && has_status(e, 110)
        })
        .await;
    assert!(bob.gets_within(QUIET, from_occupant(&al)).await.is_none());
    laptop
        .send(&format!(
            "<presence to='{al}'><show>xa</show><status>gone fishing</status></presence>"
        ))
        .await;
    // Now the phone (away) is the most available: bob sees away.
    let p = bob.expect("Al away", from_occupant(&al)).await;
    assert_eq!(
        p.get_child("show", "jabber:client")
            .map(|s| s.text())
            .as_deref(),
        Some("away")
    );
    // The phone leaves: only it gets the unavailable; bob sees xa.
    let bye = phone.leave_room(&r, "Al").await;
    assert!(has_status(&bye, 110));
    let p = bob.expect("Al xa", from_occupant(&al)).await;
    assert_eq!(p.attr("type"), None, "a session leaving is not a leave");
    assert_eq!(
        p.get_child("show", "jabber:client")
            .map(|s| s.text())
            .as_deref(),
        Some("xa")
    );
    assert!(laptop
        .gets_within(QUIET, |e| from_occupant(&al)(e)
            && e.attr("type") == Some("unavailable"))
        .await
        .is_none());
    bob.say(&r, "still there?").await;
    laptop.expect_groupchat("still there?").await;
    assert!(phone
        .gets_within(QUIET, |e| body(e).as_deref() == Some("still there?"))
        .await
        .is_none());
}

#[tokio::test]
async fn a_kick_removes_every_session_behind_the_nick() {
    let s = muc::server().await;
    let (r, mut bob, mut phone, mut laptop) = shared_nick(&s, "kick").await;
    let res = bob
        .admin_set(
            &r,
            &format!("<item xmlns='{MUC_ADMIN}' nick='Al' role='none'/>"),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{}", String::from(&res));
    let al = format!("{r}/Al");
    for c in [&mut phone, &mut laptop] {
        let p = c
            .expect("kicked", |e| {
                from_occupant(&al)(e) && e.attr("type") == Some("unavailable")
            })
            .await;
        assert!(has_status(&p, 307) && has_status(&p, 110));
    }
    let p = bob.expect("Al kicked", from_occupant(&al)).await;
    assert!(has_status(&p, 307));
}

fn bounce(to: &str, condition: &str, kind: &str) -> String {
    format!(
        "<message to='{to}' type='error' id='b'><error type='{kind}'>\
         <{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    )
}

#[tokio::test]
async fn delivery_errors_remove_the_session_that_is_gone_and_others_do_not() {
    let s = muc::server().await;
    let (r, mut bob, mut phone, mut laptop) = shared_nick(&s, "ghosts").await;
    let al = format!("{r}/Al");
    let bobs = format!("{r}/Bob");
    // An error that does not mean "gone" removes nobody.
    laptop
        .send(&bounce(&bobs, "resource-constraint", "wait"))
        .await;
    assert!(bob.gets_within(QUIET, from_occupant(&al)).await.is_none());
    // The laptop's messages bounce as undeliverable: only it goes, silently.
    laptop
        .send(&bounce(&bobs, "recipient-unavailable", "wait"))
        .await;
    assert!(bob.gets_within(QUIET, from_occupant(&al)).await.is_none());
    bob.say(&r, "who is here").await;
    phone.expect_groupchat("who is here").await;
    assert!(laptop
        .gets_within(QUIET, |e| body(e).as_deref() == Some("who is here"))
        .await
        .is_none());
    // The last session bounces with service-unavailable: removed with 333.
    phone
        .send(&bounce(&bobs, "service-unavailable", "cancel"))
        .await;
    let p = bob
        .expect("Al removed", |e| {
            from_occupant(&al)(e) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert!(has_status(&p, 333), "{}", String::from(&p));
}
