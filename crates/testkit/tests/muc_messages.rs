//! XEP-0045 §7.3–§7.8, §7.14, §8.1 and §17.2 over sockets: groupchat
//! messages (with XEP-0359 stanza-ids and XEP-0421 occupant-ids), the
//! subject, private messages, nick and presence changes, leaving,
//! invitations (mediated and XEP-0249 direct), XEP-0410 self-pings, IQs
//! between occupants, and what bad input gets.

use std::time::Duration;

use roost_testkit::client::body;
use roost_testkit::muc::{
    self, error_condition, has_status, is_presence_from, item, room, status_codes, MUC_USER,
};
use roost_testkit::{Client, TestServer};

const SHORT: Duration = Duration::from_millis(300);
const SID: &str = "urn:xmpp:sid:0";
const OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";

/// alice (owner, "crone") and bob ("bob") in an instant room.
async fn two_in_a_room(s: &TestServer, name: &str) -> (Client, Client, String) {
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room(name);
    a.create_room(&r, "crone").await;
    b.join_room(&r, "bob").await;
    a.expect("bob enters", |e| is_presence_from(e, &format!("{r}/bob")))
        .await;
    (a, b, r)
}

#[tokio::test]
async fn a_groupchat_message_reaches_everyone_including_the_sender_with_its_id() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<message to='{r}' type='groupchat' id='hysf1v37'><body>'tis time</body></message>"
    ))
    .await;
    for c in [&mut a, &mut b] {
        let m = c.expect_groupchat("'tis time").await;
        assert_eq!(m.attr("id"), Some("hysf1v37"));
        assert_eq!(m.attr("from"), Some(&*format!("{r}/bob")));
    }
}

#[tokio::test]
async fn a_reflected_message_carries_the_rooms_stanza_id_and_an_occupant_id() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.say(&r, "stamped").await;
    let seen_by_a = a.expect_groupchat("stamped").await;
    let seen_by_b = b.expect_groupchat("stamped").await;
    let sid = |m: &minidom::Element| {
        let s = m.get_child("stanza-id", SID).expect("stanza-id");
        assert_eq!(s.attr("by"), Some(r.as_str()));
        s.attr("id").unwrap().to_string()
    };
    assert_eq!(sid(&seen_by_a), sid(&seen_by_b));
    let oid = |m: &minidom::Element| {
        m.get_child("occupant-id", OCCUPANT_ID)
            .and_then(|o| o.attr("id"))
            .unwrap()
            .to_string()
    };
    assert_eq!(oid(&seen_by_a), oid(&seen_by_b));
    // The same occupant id as in bob's presence.
    b.send(&format!(
        "<presence to='{r}/bob'><show>away</show></presence>"
    ))
    .await;
    let p = a
        .expect("bob's update", |e| is_presence_from(e, &format!("{r}/bob")))
        .await;
    assert_eq!(
        p.get_child("occupant-id", OCCUPANT_ID).unwrap().attr("id"),
        Some(&*oid(&seen_by_a))
    );
}

#[tokio::test]
async fn forged_room_stanza_ids_and_occupant_ids_are_replaced() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<message to='{r}' type='groupchat'><body>forged</body>\
         <stanza-id xmlns='{SID}' id='fake' by='{r}'/>\
         <occupant-id xmlns='{OCCUPANT_ID}' id='crone-id'/></message>"
    ))
    .await;
    let m = a.expect_groupchat("forged").await;
    let ids: Vec<&str> = m
        .children()
        .filter(|c| c.name() == "stanza-id")
        .filter_map(|c| c.attr("id"))
        .collect();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], "fake");
    let oids: Vec<&str> = m
        .children()
        .filter(|c| c.name() == "occupant-id")
        .filter_map(|c| c.attr("id"))
        .collect();
    assert_eq!(oids.len(), 1);
    assert_ne!(oids[0], "crone-id");
}

#[tokio::test]
async fn a_groupchat_message_from_a_non_occupant_is_not_acceptable() {
    let s = muc::server().await;
    let (mut a, _b, r) = two_in_a_room(&s, "coven").await;
    s.user("carol").await;
    let mut c = s.login("carol", "home").await;
    c.send(&format!(
        "<message to='{r}' type='groupchat' id='x1'><body>let me in</body></message>"
    ))
    .await;
    let e = c
        .expect("error", |e| {
            e.name() == "message" && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
    assert!(a
        .gets_within(SHORT, |e| muc::is_groupchat_with_body(e, "let me in"))
        .await
        .is_none());
}

#[tokio::test]
async fn a_message_to_a_room_that_does_not_exist_is_item_not_found() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    a.send(&format!(
        "<message to='{}' type='groupchat'><body>anyone?</body></message>",
        room("nowhere")
    ))
    .await;
    let e = a.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn a_visitor_in_a_moderated_room_may_not_speak() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("stage");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_moderatedroom", "1")])
        .await;
    let own = b.join_room(&r, "bob").await;
    assert_eq!(item(&own).unwrap().attr("role"), Some("visitor"));
    b.say(&r, "hear me").await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    assert!(a
        .gets_within(SHORT, |e| muc::is_groupchat_with_body(e, "hear me"))
        .await
        .is_none());
}

#[tokio::test]
async fn a_moderator_changes_the_subject_and_everyone_sees_it() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    a.send(&format!(
        "<message to='{r}' type='groupchat'><subject>Fire Burn</subject></message>"
    ))
    .await;
    for c in [&mut a, &mut b] {
        let m = c
            .expect("subject", |e| {
                e.get_child("subject", "jabber:client")
                    .is_some_and(|s| s.text() == "Fire Burn")
            })
            .await;
        assert_eq!(m.attr("from"), Some(&*format!("{r}/crone")));
    }
    // A newcomer gets it at the end of the join, delayed.
    s.user("carol").await;
    let mut c = s.login("carol", "home").await;
    c.join_room_with(&r, "carol", "").await;
    let subj = c.expect_subject(&r).await;
    assert_eq!(
        subj.get_child("subject", "jabber:client").unwrap().text(),
        "Fire Burn"
    );
    assert!(subj.get_child("delay", "urn:xmpp:delay").is_some());
}

#[tokio::test]
async fn a_participant_may_not_change_the_subject_unless_the_room_allows_it() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<message to='{r}' type='groupchat'><subject>mine</subject></message>"
    ))
    .await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    let ok = a
        .configure_room(&r, &[("muc#roomconfig_changesubject", "1")])
        .await;
    assert_eq!(ok.attr("type"), Some("result"));
    b.send(&format!(
        "<message to='{r}' type='groupchat'><subject>ours</subject></message>"
    ))
    .await;
    a.expect("subject", |e| {
        e.get_child("subject", "jabber:client")
            .is_some_and(|s| s.text() == "ours")
    })
    .await;
}

#[tokio::test]
async fn a_private_message_reaches_only_its_recipient_marked_as_from_the_room() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    s.user("carol").await;
    let mut c = s.login("carol", "home").await;
    c.join_room(&r, "carol").await;
    b.send(&format!(
        "<message to='{r}/crone' type='chat' id='pm1'><body>psst</body></message>"
    ))
    .await;
    let m = a.expect("pm", |e| body(e).as_deref() == Some("psst")).await;
    assert_eq!(m.attr("from"), Some(&*format!("{r}/bob")));
    assert_eq!(m.attr("id"), Some("pm1"));
    assert!(m.get_child("x", MUC_USER).is_some());
    assert!(c
        .gets_within(SHORT, |e| body(e).as_deref() == Some("psst"))
        .await
        .is_none());
}

#[tokio::test]
async fn a_private_message_to_an_unknown_nick_is_item_not_found() {
    let s = muc::server().await;
    let (_a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<message to='{r}/nobody' type='chat'><body>hello?</body></message>"
    ))
    .await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn a_private_message_of_type_groupchat_is_a_bad_request() {
    let s = muc::server().await;
    let (_a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<message to='{r}/crone' type='groupchat'><body>oops</body></message>"
    ))
    .await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn a_private_message_from_a_non_occupant_is_not_acceptable() {
    let s = muc::server().await;
    let (_a, _b, r) = two_in_a_room(&s, "coven").await;
    s.user("carol").await;
    let mut c = s.login("carol", "home").await;
    c.send(&format!(
        "<message to='{r}/crone' type='chat'><body>hi</body></message>"
    ))
    .await;
    let e = c.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
}

#[tokio::test]
async fn private_messages_can_be_turned_off() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    let ok = a
        .configure_room(&r, &[("muc#roomconfig_allowpm", "none")])
        .await;
    assert_eq!(ok.attr("type"), Some("result"));
    b.send(&format!(
        "<message to='{r}/crone' type='chat'><body>psst</body></message>"
    ))
    .await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn a_nick_change_is_unavailable_with_303_then_available_under_the_new_nick() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!("<presence to='{r}/oldhag'/>")).await;
    for (c, me) in [(&mut a, false), (&mut b, true)] {
        let old = c
            .expect("old nick leaves", |e| {
                is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
            })
            .await;
        assert!(has_status(&old, 303));
        assert_eq!(has_status(&old, 110), me);
        assert_eq!(item(&old).unwrap().attr("nick"), Some("oldhag"));
        let new = c
            .expect("new nick", |e| is_presence_from(e, &format!("{r}/oldhag")))
            .await;
        assert_eq!(new.attr("type"), None);
        assert!(!has_status(&new, 303));
        assert_eq!(has_status(&new, 110), me);
    }
    // Messages now come from the new nick.
    b.say(&r, "new me").await;
    let m = a.expect_groupchat("new me").await;
    assert_eq!(m.attr("from"), Some(&*format!("{r}/oldhag")));
}

#[tokio::test]
async fn changing_to_a_taken_nick_is_a_conflict() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!("<presence to='{r}/crone'/>")).await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("conflict"));
    assert!(a
        .gets_within(SHORT, |e| is_presence_from(e, &format!("{r}/bob")))
        .await
        .is_none());
}

#[tokio::test]
async fn a_presence_update_is_passed_to_everyone() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<presence to='{r}/bob'><show>xa</show><status>gone where the goblins go</status></presence>"
    ))
    .await;
    for c in [&mut a, &mut b] {
        let p = c
            .expect("update", |e| {
                is_presence_from(e, &format!("{r}/bob"))
                    && e.get_child("show", "jabber:client").is_some()
            })
            .await;
        assert_eq!(p.get_child("show", "jabber:client").unwrap().text(), "xa");
    }
}

#[tokio::test]
async fn leaving_with_a_status_tells_everyone_and_110_to_the_leaver() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<presence to='{r}/bob' type='unavailable'><status>bye all</status></presence>"
    ))
    .await;
    let own = b
        .expect("own exit", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(status_codes(&own), vec![110]);
    let p = a
        .expect("bob leaves", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(
        p.get_child("status", "jabber:client").unwrap().text(),
        "bye all"
    );
    assert_eq!(item(&p).unwrap().attr("role"), Some("none"));
    // Bob no longer gets room traffic.
    a.say(&r, "after bob").await;
    assert!(b
        .gets_within(SHORT, |e| muc::is_groupchat_with_body(e, "after bob"))
        .await
        .is_none());
}

#[tokio::test]
async fn a_mediated_invitation_carries_the_inviter_reason_and_password() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    b.available().await;
    let r = room("secret");
    a.create_configured_room(
        &r,
        "crone",
        &[
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "cauldronburn"),
        ],
    )
    .await;
    a.send(&format!(
        "<message to='{r}' id='inv1'><x xmlns='{MUC_USER}'>\
         <invite to='bob@localhost'><reason>Come, witch!</reason></invite></x></message>"
    ))
    .await;
    let m = b
        .expect("invitation", |e| {
            e.get_child("x", MUC_USER)
                .is_some_and(|x| x.get_child("invite", MUC_USER).is_some())
        })
        .await;
    assert_eq!(m.attr("from"), Some(r.as_str()));
    let x = m.get_child("x", MUC_USER).unwrap();
    let inv = x.get_child("invite", MUC_USER).unwrap();
    assert_eq!(inv.attr("from"), Some("alice@localhost"));
    assert_eq!(
        inv.get_child("reason", MUC_USER).unwrap().text(),
        "Come, witch!"
    );
    assert_eq!(
        x.get_child("password", MUC_USER).unwrap().text(),
        "cauldronburn"
    );
}

#[tokio::test]
async fn a_declined_invitation_is_reported_to_the_inviter() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    a.available().await;
    let mut b = s.login("bob", "home").await;
    b.available().await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    a.send(&format!(
        "<message to='{r}'><x xmlns='{MUC_USER}'><invite to='bob@localhost'/></x></message>"
    ))
    .await;
    b.expect("invitation", |e| e.get_child("x", MUC_USER).is_some())
        .await;
    b.send(&format!(
        "<message to='{r}'><x xmlns='{MUC_USER}'><decline to='alice@localhost'>\
         <reason>Too busy</reason></decline></x></message>"
    ))
    .await;
    let d = a
        .expect("decline", |e| {
            e.get_child("x", MUC_USER)
                .is_some_and(|x| x.get_child("decline", MUC_USER).is_some())
        })
        .await;
    let decline = d
        .get_child("x", MUC_USER)
        .unwrap()
        .get_child("decline", MUC_USER)
        .unwrap();
    assert_eq!(decline.attr("from"), Some("bob@localhost"));
    assert_eq!(
        decline.get_child("reason", MUC_USER).unwrap().text(),
        "Too busy"
    );
}

#[tokio::test]
async fn a_decline_without_an_invitation_is_not_relayed() {
    let s = muc::server().await;
    let (_a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<message to='{r}'><x xmlns='{MUC_USER}'><decline to='carol@localhost'/></x></message>"
    ))
    .await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
}

#[tokio::test]
async fn only_admins_invite_to_a_members_only_room() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    s.user("carol").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let mut c = s.login("carol", "home").await;
    c.available().await;
    let r = room("club");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_membersonly", "1")])
        .await;
    a.admin_set(&r, "<item affiliation='member' jid='bob@localhost'/>")
        .await;
    b.join_room(&r, "bob").await;
    b.send(&format!(
        "<message to='{r}'><x xmlns='{MUC_USER}'><invite to='carol@localhost'/></x></message>"
    ))
    .await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    // The owner's invitation makes carol a member, so she can enter.
    a.send(&format!(
        "<message to='{r}'><x xmlns='{MUC_USER}'><invite to='carol@localhost'/></x></message>"
    ))
    .await;
    c.expect("invitation", |e| e.get_child("x", MUC_USER).is_some())
        .await;
    let own = c.join_room(&r, "carol").await;
    assert_eq!(item(&own).unwrap().attr("affiliation"), Some("member"));
}

#[tokio::test]
async fn a_direct_invitation_passes_through_as_a_message() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    b.available().await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    a.send(&format!(
        "<message to='bob@localhost'><x xmlns='jabber:x:conference' jid='{r}' reason='join us'/></message>"
    ))
    .await;
    let m = b
        .expect("direct invitation", |e| {
            e.get_child("x", "jabber:x:conference").is_some()
        })
        .await;
    assert_eq!(m.attr("from"), Some("alice@localhost/home"));
    assert_eq!(
        m.get_child("x", "jabber:x:conference").unwrap().attr("jid"),
        Some(r.as_str())
    );
    b.join_room(&r, "bob").await;
}

#[tokio::test]
async fn a_self_ping_of_a_joined_occupant_is_answered_by_the_room() {
    let s = muc::server().await;
    let (_a, mut b, r) = two_in_a_room(&s, "coven").await;
    let res = b
        .iq(
            "get",
            Some(&format!("{r}/bob")),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    assert_eq!(res.attr("from"), Some(&*format!("{r}/bob")));
}

#[tokio::test]
async fn a_self_ping_of_a_non_occupant_is_not_acceptable() {
    let s = muc::server().await;
    let (_a, _b, r) = two_in_a_room(&s, "coven").await;
    s.user("carol").await;
    let mut c = s.login("carol", "home").await;
    let res = c
        .iq(
            "get",
            Some(&format!("{r}/carol")),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("error"));
    assert_eq!(error_condition(&res).as_deref(), Some("not-acceptable"));
}

#[tokio::test]
async fn an_iq_to_another_occupant_is_passed_on_and_answered_without_real_jids() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<iq type='get' id='v1' to='{r}/crone'><query xmlns='jabber:iq:version'/></iq>"
    ))
    .await;
    let req = a
        .expect("passed request", |e| {
            e.name() == "iq" && e.attr("type") == Some("get")
        })
        .await;
    assert_eq!(req.attr("from"), Some(&*format!("{r}/bob")));
    let id = req.attr("id").unwrap().to_string();
    a.send(&format!(
        "<iq type='result' id='{id}' to='{r}/bob'><query xmlns='jabber:iq:version'>\
         <name>witchcraft</name></query></iq>"
    ))
    .await;
    let res = b
        .expect("answer", |e| e.name() == "iq" && e.attr("id") == Some("v1"))
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    assert_eq!(res.attr("from"), Some(&*format!("{r}/crone")));
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_room_goes_on() {
    let s = muc::server_with(|c| c.muc.max_message_size = 1024).await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    let big = "x".repeat(2000);
    b.say(&r, &big).await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("policy-violation"));
    b.say(&r, "small").await;
    a.expect_groupchat("small").await;
}

#[tokio::test]
async fn a_normal_message_to_the_room_is_a_bad_request() {
    let s = muc::server().await;
    let (_a, mut b, r) = two_in_a_room(&s, "coven").await;
    b.send(&format!(
        "<message to='{r}' type='chat'><body>hm</body></message>"
    ))
    .await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn garbage_from_one_occupant_does_not_break_the_room_for_others() {
    let s = muc::server().await;
    let (mut a, mut b, r) = two_in_a_room(&s, "coven").await;
    for junk in [
        format!("<message to='{r}' type='groupchat'/>"),
        format!("<message to='{r}' type='groupchat'><x xmlns='{MUC_USER}'><status code='201'/></x><body>forged status</body></message>"),
        format!("<presence to='{r}/bob' type='probe'/>"),
        format!("<presence to='{r}/bob' type='subscribe'/>"),
        format!("<iq type='set' id='j1' to='{r}'><query xmlns='http://jabber.org/protocol/muc#admin'><item/></query></iq>"),
        format!("<iq type='get' id='j2' to='{r}'/>"),
        format!("<iq type='result' id='nothing' to='{r}/crone'/>"),
        // An error that does not mean "gone" (service-unavailable would:
        // muc_multisession.rs) changes nothing.
        format!("<message to='{r}' type='error'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"),
    ] {
        b.send(&junk).await;
    }
    let forged = a.expect_groupchat("forged status").await;
    assert!(!has_status(&forged, 201));
    a.say(&r, "still here").await;
    a.expect_groupchat("still here").await;
    b.expect_groupchat("still here").await;
}
