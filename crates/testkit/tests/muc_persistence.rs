//! XEP-0045 persistence over a server restart: persistent rooms keep their
//! configuration, affiliations, reserved nicks, subject, history and
//! archive; temporary rooms do not survive.

use std::time::Duration;

use roost_testkit::muc::{self, error_condition, has_status, item, room, MUC_ADMIN};

const INFO: &str = "http://jabber.org/protocol/disco#info";

#[tokio::test]
async fn a_persistent_rooms_configuration_affiliations_and_subject_survive_a_restart() {
    let s = muc::server().await;
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
    let r = room("keep");
    {
        let mut a = s.login("alice", "home").await;
        a.create_configured_room(
            &r,
            "crone",
            &[
                ("muc#roomconfig_persistentroom", "1"),
                ("muc#roomconfig_roomname", "The Keep"),
                ("muc#roomconfig_whois", "anyone"),
            ],
        )
        .await;
        a.admin_set(
            &r,
            "<item affiliation='member' jid='bob@localhost' nick='bobby'/>\
             <item affiliation='outcast' jid='carol@localhost'/>",
        )
        .await;
        a.send(&format!(
            "<message to='{r}' type='groupchat'><subject>Walls and towers</subject></message>"
        ))
        .await;
        a.expect("subject", |e| {
            e.get_child("subject", "jabber:client")
                .is_some_and(|s| s.text() == "Walls and towers")
        })
        .await;
    }
    let s = s.restart().await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let mut c = s.login("carol", "home").await;
    let info = b
        .iq("get", Some(&r), &format!("<query xmlns='{INFO}'/>"))
        .await;
    let id = info
        .get_child("query", INFO)
        .and_then(|q| q.get_child("identity", INFO))
        .unwrap();
    assert_eq!(id.attr("name"), Some("The Keep"));
    let own = b.join_room_with(&r, "bobby", "").await;
    assert!(has_status(&own, 100), "still non-anonymous");
    assert!(!has_status(&own, 201));
    assert_eq!(item(&own).unwrap().attr("affiliation"), Some("member"));
    let subject = b.expect_subject(&r).await;
    assert_eq!(
        subject
            .get_child("subject", "jabber:client")
            .unwrap()
            .text(),
        "Walls and towers"
    );
    let e = c.join_room_with(&r, "carol", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    // The owner is still the owner.
    let own = a.join_room(&r, "crone").await;
    assert_eq!(item(&own).unwrap().attr("affiliation"), Some("owner"));
    let list = a
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{MUC_ADMIN}'><item affiliation='member'/></query>"),
        )
        .await;
    let member = list
        .get_child("query", MUC_ADMIN)
        .and_then(|q| q.children().next())
        .unwrap();
    assert_eq!(member.attr("nick"), Some("bobby"));
}

#[tokio::test]
async fn history_survives_a_restart() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let r = room("keep");
    {
        let mut a = s.login("alice", "home").await;
        a.create_configured_room(&r, "crone", &[("muc#roomconfig_persistentroom", "1")])
            .await;
        for m in ["before the storm", "still before"] {
            a.say(&r, m).await;
            a.expect_groupchat(m).await;
        }
    }
    let s = s.restart().await;
    let mut b = s.login("bob", "home").await;
    b.join_room_with(&r, "bob", "").await;
    for m in ["before the storm", "still before"] {
        let h = b.expect_groupchat(m).await;
        assert!(h.get_child("delay", "urn:xmpp:delay").is_some());
        assert!(h.get_child("stanza-id", "urn:xmpp:sid:0").is_some());
    }
    b.expect_subject(&r).await;
}

#[tokio::test]
async fn the_archive_survives_a_restart() {
    let s = muc::server().await;
    s.user("alice").await;
    let r = room("keep");
    {
        let mut a = s.login("alice", "home").await;
        a.create_configured_room(&r, "crone", &[("muc#roomconfig_persistentroom", "1")])
            .await;
        a.say(&r, "for the record").await;
        a.expect_groupchat("for the record").await;
    }
    let s = s.restart().await;
    let mut a = s.login("alice", "home").await;
    let res = a
        .iq(
            "set",
            Some(&r),
            "<query xmlns='urn:xmpp:mam:2' queryid='q1'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let m = a
        .gets_within(Duration::from_millis(500), |e| {
            e.get_child("result", "urn:xmpp:mam:2").is_some()
        })
        .await
        .expect("archived message");
    let fwd = m
        .get_child("result", "urn:xmpp:mam:2")
        .and_then(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
        .and_then(|f| f.get_child("message", "jabber:client"))
        .unwrap();
    assert_eq!(
        roost_testkit::client::body(fwd).as_deref(),
        Some("for the record")
    );
}

#[tokio::test]
async fn a_temporary_room_does_not_survive_a_restart() {
    let s = muc::server().await;
    s.user("alice").await;
    let r = room("fleeting");
    {
        let mut a = s.login("alice", "home").await;
        a.create_room(&r, "crone").await;
        a.say(&r, "gone soon").await;
        a.expect_groupchat("gone soon").await;
    }
    let s = s.restart().await;
    let mut a = s.login("alice", "home").await;
    let info = a
        .iq("get", Some(&r), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert_eq!(error_condition(&info).as_deref(), Some("item-not-found"));
    let own = a.join_room_with(&r, "crone", "").await;
    assert!(has_status(&own, 201));
    assert!(a
        .gets_within(Duration::from_millis(300), |e| muc::is_groupchat_with_body(
            e,
            "gone soon"
        ))
        .await
        .is_none());
}
