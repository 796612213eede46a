//! XEP-0045 §7.2 and §10.1 over sockets: creating rooms (instant and
//! reserved), entering them and every refusal, the join sequence (presence,
//! self-presence last, history, subject), and a bare JID as an occupant.

use std::time::Duration;

use roost_testkit::client::body;
use roost_testkit::muc::{
    self, error_condition, has_status, is_presence_from, item, room, status_codes, MUC, MUC_OWNER,
};
use roost_testkit::TestServer;

const SHORT: Duration = Duration::from_millis(300);

async fn users(s: &TestServer, names: &[&str]) {
    for n in names {
        s.user(n).await;
    }
}

#[tokio::test]
async fn creating_a_room_makes_the_creator_owner_with_status_201() {
    let s = muc::server().await;
    users(&s, &["alice"]).await;
    let mut a = s.login("alice", "home").await;
    let r = room("coven");
    let own = a.join_room(&r, "crone").await;
    assert_eq!(status_codes(&own), vec![110, 170, 201]);
    let i = item(&own).unwrap();
    assert_eq!(i.attr("affiliation"), Some("owner"));
    assert_eq!(i.attr("role"), Some("moderator"));
    assert_eq!(own.attr("to"), Some("alice@localhost/home"));
}

#[tokio::test]
async fn a_locked_room_refuses_others_with_item_not_found() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.join_room(&r, "crone").await;
    let e = b.join_room_with(&r, "bob", "").await;
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(error_condition(&e).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn an_empty_submit_unlocks_an_instant_room() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    let own = b.join_room(&r, "bob").await;
    assert_eq!(item(&own).unwrap().attr("affiliation"), Some("none"));
    assert_eq!(item(&own).unwrap().attr("role"), Some("participant"));
    assert!(!has_status(&own, 201));
}

#[tokio::test]
async fn a_reserved_room_is_configured_before_anyone_else_enters() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("cave");
    a.join_room(&r, "crone").await;
    let form = a
        .iq("get", Some(&r), &format!("<query xmlns='{MUC_OWNER}'/>"))
        .await;
    assert_eq!(form.attr("type"), Some("result"));
    let x = form
        .get_child("query", MUC_OWNER)
        .and_then(|q| q.get_child("x", muc::DATA))
        .expect("form");
    assert_eq!(x.attr("type"), Some("form"));
    let ok = a
        .configure_room(&r, &[("muc#roomconfig_roomname", "A Dark Cave")])
        .await;
    assert_eq!(ok.attr("type"), Some("result"));
    b.join_room(&r, "bob").await;
    let info = b
        .iq(
            "get",
            Some(&r),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let id = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .and_then(|q| q.get_child("identity", "http://jabber.org/protocol/disco#info"))
        .unwrap();
    assert_eq!(id.attr("name"), Some("A Dark Cave"));
}

#[tokio::test]
async fn cancelling_the_initial_configuration_destroys_the_room() {
    let s = muc::server().await;
    users(&s, &["alice"]).await;
    let mut a = s.login("alice", "home").await;
    let r = room("cave");
    a.join_room(&r, "crone").await;
    let res = a
        .iq(
            "set",
            Some(&r),
            &format!("<query xmlns='{MUC_OWNER}'><x xmlns='jabber:x:data' type='cancel'/></query>"),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let gone = a
        .expect("removal", |e| {
            is_presence_from(e, &format!("{r}/crone")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert!(gone
        .get_child("x", muc::MUC_USER)
        .and_then(|x| x.get_child("destroy", muc::MUC_USER))
        .is_some());
    // Entering again creates a new room.
    let own = a.join_room(&r, "crone").await;
    assert!(has_status(&own, 201));
}

#[tokio::test]
async fn the_join_sequence_is_others_then_self_then_history_then_subject() {
    let s = muc::server().await;
    users(&s, &["alice", "bob", "carol"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let mut c = s.login("carol", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    b.join_room(&r, "bob").await;
    a.say(&r, "first").await;
    a.expect_groupchat("first").await;
    // Carol reads her stream in order.
    c.send(&format!(
        "<presence to='{r}/carol'><x xmlns='{MUC}'/></presence>"
    ))
    .await;
    let mut seen = Vec::new();
    loop {
        let e = c.recv().await;
        let kind = if e.name() == "presence" && has_status(&e, 110) {
            "self".to_string()
        } else if e.name() == "presence" {
            format!("presence {}", e.attr("from").unwrap_or_default())
        } else if body(&e).is_some() {
            "history".to_string()
        } else if e.get_child("subject", "jabber:client").is_some() {
            "subject".to_string()
        } else {
            continue;
        };
        let done = kind == "subject";
        seen.push(kind);
        if done {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            format!("presence {r}/bob"),
            format!("presence {r}/crone"),
            "self".into(),
            "history".into(),
            "subject".into()
        ]
    );
}

#[tokio::test]
async fn others_see_the_newcomer_enter() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    b.join_room(&r, "bob").await;
    let p = a
        .expect("bob's presence", |e| {
            is_presence_from(e, &format!("{r}/bob"))
        })
        .await;
    assert!(!has_status(&p, 110));
    assert_eq!(item(&p).unwrap().attr("role"), Some("participant"));
    // Alice is a moderator: she sees bob's real JID in a semi-anonymous room.
    assert_eq!(item(&p).unwrap().attr("jid"), Some("bob@localhost/home"));
}

#[tokio::test]
async fn a_taken_nick_is_a_conflict() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    let e = b.join_room_with(&r, "crone", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("conflict"));
}

#[tokio::test]
async fn a_wrong_password_is_not_authorized_and_the_right_one_enters() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
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
    let e = b.join_room_with(&r, "bob", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("not-authorized"));
    let e = b
        .join_room_with(&r, "bob", "<password>wrong</password>")
        .await;
    assert_eq!(error_condition(&e).as_deref(), Some("not-authorized"));
    let ok = b
        .join_room_with(&r, "bob", "<password>cauldronburn</password>")
        .await;
    assert_eq!(ok.attr("type"), None);
}

#[tokio::test]
async fn a_members_only_room_refuses_non_members_with_registration_required() {
    let s = muc::server().await;
    users(&s, &["alice", "bob", "carol"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let mut c = s.login("carol", "home").await;
    let r = room("club");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_membersonly", "1")])
        .await;
    let e = b.join_room_with(&r, "bob", "").await;
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("registration-required")
    );
    let res = a
        .admin_set(&r, "<item affiliation='member' jid='carol@localhost'/>")
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let own = c.join_room(&r, "carol").await;
    assert_eq!(item(&own).unwrap().attr("affiliation"), Some("member"));
}

#[tokio::test]
async fn a_banned_user_is_forbidden() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    let res = a
        .admin_set(&r, "<item affiliation='outcast' jid='bob@localhost'/>")
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let e = b.join_room_with(&r, "bob", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn a_full_room_is_service_unavailable() {
    let s = muc::server().await;
    users(&s, &["alice", "bob", "carol"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let mut c = s.login("carol", "home").await;
    let r = room("tiny");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_maxusers", "2")])
        .await;
    b.join_room(&r, "bob").await;
    let e = c.join_room_with(&r, "carol", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
}

#[tokio::test]
async fn the_owner_may_still_enter_a_full_room() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut a2 = s.login("alice", "phone").await;
    let mut b = s.login("bob", "home").await;
    let r = room("tiny");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_maxusers", "2")])
        .await;
    b.join_room(&r, "bob").await;
    a2.join_room(&r, "crone2").await;
}

#[tokio::test]
async fn presence_to_the_bare_room_jid_is_jid_malformed() {
    let s = muc::server().await;
    users(&s, &["alice"]).await;
    let mut a = s.login("alice", "home").await;
    let r = room("coven");
    a.send(&format!("<presence to='{r}'><x xmlns='{MUC}'/></presence>"))
        .await;
    let e = a
        .expect("error", |e| {
            e.name() == "presence" && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(e.attr("from"), Some(r.as_str()));
    assert_eq!(error_condition(&e).as_deref(), Some("jid-malformed"));
}

#[tokio::test]
async fn a_non_anonymous_room_says_so_with_100_and_shows_real_jids_to_all() {
    let s = muc::server().await;
    users(&s, &["alice", "bob", "carol"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let mut c = s.login("carol", "home").await;
    let r = room("open");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_whois", "anyone")])
        .await;
    let own = b.join_room(&r, "bob").await;
    assert!(has_status(&own, 100));
    c.join_room(&r, "carol").await;
    let p = b
        .expect("carol", |e| is_presence_from(e, &format!("{r}/carol")))
        .await;
    assert_eq!(item(&p).unwrap().attr("jid"), Some("carol@localhost/home"));
}

#[tokio::test]
async fn a_semi_anonymous_room_hides_real_jids_from_participants() {
    let s = muc::server().await;
    users(&s, &["alice", "bob", "carol"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let mut c = s.login("carol", "home").await;
    let r = room("masks");
    a.create_room(&r, "crone").await;
    let own = b.join_room(&r, "bob").await;
    assert!(!has_status(&own, 100));
    c.join_room(&r, "carol").await;
    let p = b
        .expect("carol", |e| is_presence_from(e, &format!("{r}/carol")))
        .await;
    assert_eq!(item(&p).unwrap().attr("jid"), None);
    // The moderator does see it.
    let p = a
        .expect("carol", |e| is_presence_from(e, &format!("{r}/carol")))
        .await;
    assert_eq!(item(&p).unwrap().attr("jid"), Some("carol@localhost/home"));
}

#[tokio::test]
async fn history_is_sent_with_delays_from_the_room() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    for m in ["one", "two", "three"] {
        a.say(&r, m).await;
        a.expect_groupchat(m).await;
    }
    b.join_room_with(&r, "bob", "").await;
    for m in ["one", "two", "three"] {
        let h = b.expect_groupchat(m).await;
        let delay = h.get_child("delay", "urn:xmpp:delay").expect("delay");
        assert_eq!(delay.attr("from"), Some(r.as_str()));
        assert!(delay.attr("stamp").is_some());
        assert_eq!(h.attr("from"), Some(&*format!("{r}/crone")));
    }
}

#[tokio::test]
async fn maxstanzas_limits_history_to_the_newest() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    for m in ["one", "two", "three"] {
        a.say(&r, m).await;
        a.expect_groupchat(m).await;
    }
    b.join_room_with(&r, "bob", "<history maxstanzas='2'/>")
        .await;
    b.expect_subject(&r).await;
    b.expect_groupchat("two").await;
    b.expect_groupchat("three").await;
    assert!(b
        .gets_within(SHORT, |e| muc::is_groupchat_with_body(e, "one"))
        .await
        .is_none());
}

#[tokio::test]
async fn maxchars_zero_means_no_history() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    a.say(&r, "old news").await;
    a.expect_groupchat("old news").await;
    b.join_room_with(&r, "bob", "<history maxchars='0'/>").await;
    b.expect_subject(&r).await;
    assert!(b.gets_within(SHORT, |e| body(e).is_some()).await.is_none());
}

#[tokio::test]
async fn since_limits_history_to_later_messages() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    a.say(&r, "before").await;
    a.expect_groupchat("before").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = roost_proto::datetime::to_xep82(std::time::SystemTime::now());
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.say(&r, "after").await;
    a.expect_groupchat("after").await;
    b.join_room_with(&r, "bob", &format!("<history since='{since}'/>"))
        .await;
    b.expect_groupchat("after").await;
    b.expect_subject(&r).await;
    assert!(b
        .gets_within(SHORT, |e| muc::is_groupchat_with_body(e, "before"))
        .await
        .is_none());
}

#[tokio::test]
async fn seconds_limits_history_to_recent_messages() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    a.say(&r, "stale").await;
    a.expect_groupchat("stale").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    a.say(&r, "fresh").await;
    a.expect_groupchat("fresh").await;
    b.join_room_with(&r, "bob", "<history seconds='1'/>").await;
    b.expect_groupchat("fresh").await;
    b.expect_subject(&r).await;
    assert!(b
        .gets_within(SHORT, |e| muc::is_groupchat_with_body(e, "stale"))
        .await
        .is_none());
}

#[tokio::test]
async fn the_subject_ends_the_join_and_is_empty_when_none_was_set() {
    let s = muc::server().await;
    users(&s, &["alice"]).await;
    let mut a = s.login("alice", "home").await;
    let r = room("coven");
    a.join_room_with(&r, "crone", "").await;
    let subj = a.expect_subject(&r).await;
    assert_eq!(subj.attr("from"), Some(r.as_str()));
    assert_eq!(subj.attr("type"), Some("groupchat"));
    assert_eq!(
        subj.get_child("subject", "jabber:client").unwrap().text(),
        ""
    );
}

#[tokio::test]
async fn joining_again_with_x_resends_the_join_sequence() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    b.join_room(&r, "bob").await;
    a.expect("bob enters", |e| is_presence_from(e, &format!("{r}/bob")))
        .await;
    // Bob lost track: he joins again as if for the first time.
    let own = b.join_room_with(&r, "bob", "").await;
    assert!(has_status(&own, 110));
    b.expect("crone's presence again", |e| {
        is_presence_from(e, &format!("{r}/crone"))
    })
    .await;
    b.expect_subject(&r).await;
    // Nothing changed, so alice hears nothing.
    assert!(a
        .gets_within(SHORT, |e| is_presence_from(e, &format!("{r}/bob")))
        .await
        .is_none());
}

#[tokio::test]
async fn presence_without_x_from_a_non_occupant_is_told_it_is_not_in_the_room() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    b.send(&format!("<presence to='{r}/bob'/>")).await;
    let kick = b
        .expect("kick", |e| is_presence_from(e, &format!("{r}/bob")))
        .await;
    assert_eq!(kick.attr("type"), Some("unavailable"));
    assert_eq!(status_codes(&kick), vec![110, 307, 333]);
    // Nobody saw bob enter.
    assert!(a
        .gets_within(SHORT, |e| is_presence_from(e, &format!("{r}/bob")))
        .await
        .is_none());
}

#[tokio::test]
async fn room_creation_can_be_restricted_to_listed_accounts() {
    let s = muc::server_with(|c| {
        c.muc.restrict_room_creation = true;
        c.muc.room_creators = vec!["alice@localhost".into()];
    })
    .await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let e = b.join_room_with(&room("mine"), "bob", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("not-allowed"));
    a.create_room(&room("mine"), "alice").await;
    b.join_room(&room("mine"), "bob").await;
}

#[tokio::test]
async fn creating_more_rooms_than_max_rooms_is_refused() {
    let s = muc::server_with(|c| c.muc.max_rooms = 1).await;
    users(&s, &["alice"]).await;
    let mut a = s.login("alice", "home").await;
    a.create_room(&room("one"), "alice").await;
    let e = a.join_room_with(&room("two"), "alice", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("resource-constraint"));
}

#[tokio::test]
async fn a_temporary_room_vanishes_with_its_last_occupant() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("brief");
    a.create_room(&r, "crone").await;
    a.leave_room(&r, "crone").await;
    let info = b
        .iq(
            "get",
            Some(&r),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert_eq!(error_condition(&info).as_deref(), Some("item-not-found"));
    // The next to enter creates it anew.
    let own = b.join_room(&r, "bob").await;
    assert!(has_status(&own, 201));
}

#[tokio::test]
async fn a_closed_session_leaves_its_rooms() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    a.create_room(&r, "crone").await;
    b.join_room(&r, "bob").await;
    b.close().await;
    let p = a
        .expect("bob leaves", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(item(&p).unwrap().attr("role"), Some("none"));
}

#[tokio::test]
async fn a_nick_the_server_normalised_is_reported_with_210() {
    let s = muc::server().await;
    users(&s, &["alice"]).await;
    let mut a = s.login("alice", "home").await;
    let r = room("coven");
    // Fullwidth letters are mapped to ASCII by resourceprep (NFKC).
    a.send(&format!(
        "<presence to='{r}/ＡＢＣ'><x xmlns='{MUC}'/></presence>"
    ))
    .await;
    let own = a
        .expect("self-presence", |e| {
            e.name() == "presence" && has_status(e, 110)
        })
        .await;
    assert_eq!(own.attr("from"), Some(&*format!("{r}/ABC")));
    assert!(has_status(&own, 210));
}

#[tokio::test]
async fn a_bare_jid_injected_by_the_server_is_an_occupant_until_its_server_bounces_groupchat() {
    let s = muc::server().await;
    users(&s, &["alice", "bob"]).await;
    let mut a = s.login("alice", "home").await;
    a.available().await;
    let mut b = s.login("bob", "home").await;
    let r = room("coven");
    b.create_room(&r, "bob").await;
    // What the account layer will do: join from the bare JID.
    let join: minidom::Element = format!(
        "<presence xmlns='jabber:client' from='alice@localhost' to='{r}/alice'>\
         <x xmlns='{MUC}'/></presence>"
    )
    .parse()
    .unwrap();
    s.running.server.route_element(join);
    // Addressed to the bare JID, the account delivers it to the session.
    let own = a
        .expect("self-presence", |e| {
            is_presence_from(e, &format!("{r}/alice")) && has_status(e, 110)
        })
        .await;
    assert_eq!(item(&own).unwrap().attr("jid"), Some("alice@localhost"));
    let p = b
        .expect("alice enters", |e| {
            is_presence_from(e, &format!("{r}/alice"))
        })
        .await;
    assert_eq!(item(&p).unwrap().attr("jid"), Some("alice@localhost"));
    // With account-based joining off, the account cannot take the room's
    // groupchat traffic (the subject): its server answers
    // service-unavailable, and the room removes the ghost with 333.
    let gone = b
        .expect("alice removed", |e| {
            is_presence_from(e, &format!("{r}/alice")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert!(has_status(&gone, 333), "{}", String::from(&gone));
}
