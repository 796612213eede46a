//! XEP-0045 §10 over sockets: the room configuration form, its effects and
//! the notices of changes (§10.2.1), and room destruction (§10.9).

use std::time::Duration;

use roost_testkit::muc::{
    self, error_condition, has_status, is_presence_from, room, status_codes, DATA, MUC_OWNER,
    MUC_USER,
};
use roost_testkit::{Client, TestServer};

const SHORT: Duration = Duration::from_millis(300);
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

async fn owner_and_guest(s: &TestServer, name: &str) -> (Client, Client, String) {
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

fn features(info: &minidom::Element) -> Vec<String> {
    info.get_child("query", DISCO_INFO)
        .map(|q| {
            q.children()
                .filter(|c| c.name() == "feature")
                .filter_map(|c| c.attr("var").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn room_features(c: &mut Client, r: &str) -> Vec<String> {
    let info = c
        .iq("get", Some(r), &format!("<query xmlns='{DISCO_INFO}'/>"))
        .await;
    features(&info)
}

#[tokio::test]
async fn the_configuration_form_has_the_roomconfig_fields() {
    let s = muc::server().await;
    let (mut a, _b, r) = owner_and_guest(&s, "coven").await;
    let res = a
        .iq("get", Some(&r), &format!("<query xmlns='{MUC_OWNER}'/>"))
        .await;
    let x = res
        .get_child("query", MUC_OWNER)
        .and_then(|q| q.get_child("x", DATA))
        .expect("form");
    let vars: Vec<&str> = x
        .children()
        .filter(|f| f.name() == "field")
        .filter_map(|f| f.attr("var"))
        .collect();
    for v in [
        "FORM_TYPE",
        "muc#roomconfig_roomname",
        "muc#roomconfig_roomdesc",
        "muc#roomconfig_persistentroom",
        "muc#roomconfig_publicroom",
        "muc#roomconfig_membersonly",
        "muc#roomconfig_moderatedroom",
        "muc#roomconfig_passwordprotectedroom",
        "muc#roomconfig_roomsecret",
        "muc#roomconfig_whois",
        "muc#roomconfig_maxusers",
        "muc#maxhistoryfetch",
        "muc#roomconfig_allowpm",
        "muc#roomconfig_changesubject",
        "muc#roomconfig_enablearchiving",
    ] {
        assert!(vars.contains(&v), "{v} missing from {vars:?}");
    }
}

#[tokio::test]
async fn only_owners_may_configure() {
    let s = muc::server().await;
    let (_a, mut b, r) = owner_and_guest(&s, "coven").await;
    let res = b
        .iq("get", Some(&r), &format!("<query xmlns='{MUC_OWNER}'/>"))
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("forbidden"));
    let res = b
        .configure_room(&r, &[("muc#roomconfig_roomname", "Mine")])
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn the_configuration_shows_in_the_rooms_disco_info() {
    let s = muc::server().await;
    let (mut a, mut b, r) = owner_and_guest(&s, "coven").await;
    let before = room_features(&mut b, &r).await;
    for f in [
        "muc_temporary",
        "muc_open",
        "muc_public",
        "muc_unsecured",
        "muc_unmoderated",
        "muc_semianonymous",
    ] {
        assert!(before.contains(&f.to_string()), "{f} in {before:?}");
    }
    let res = a
        .configure_room(
            &r,
            &[
                ("muc#roomconfig_roomname", "A Dark Cave"),
                ("muc#roomconfig_roomdesc", "The place for all good witches!"),
                ("muc#roomconfig_persistentroom", "1"),
                ("muc#roomconfig_publicroom", "0"),
                ("muc#roomconfig_membersonly", "0"),
                ("muc#roomconfig_moderatedroom", "1"),
                ("muc#roomconfig_passwordprotectedroom", "1"),
                ("muc#roomconfig_roomsecret", "cauldronburn"),
                ("muc#roomconfig_whois", "anyone"),
            ],
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let info = b
        .iq("get", Some(&r), &format!("<query xmlns='{DISCO_INFO}'/>"))
        .await;
    let after = features(&info);
    for f in [
        "muc_persistent",
        "muc_open",
        "muc_hidden",
        "muc_passwordprotected",
        "muc_moderated",
        "muc_nonanonymous",
    ] {
        assert!(after.contains(&f.to_string()), "{f} in {after:?}");
    }
    let form = info
        .get_child("query", DISCO_INFO)
        .and_then(|q| q.get_child("x", DATA))
        .unwrap();
    let desc = form
        .children()
        .find(|f| f.attr("var") == Some("muc#roominfo_description"))
        .and_then(|f| f.children().next())
        .map(|v| v.text())
        .unwrap();
    assert!(desc.contains("all good witches"));
    // The form reads back what was set.
    let res = a
        .iq("get", Some(&r), &format!("<query xmlns='{MUC_OWNER}'/>"))
        .await;
    let x = res
        .get_child("query", MUC_OWNER)
        .unwrap()
        .get_child("x", DATA)
        .unwrap();
    let value = |var: &str| {
        x.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.children().next())
            .map(|v| v.text())
    };
    assert_eq!(
        value("muc#roomconfig_roomname").as_deref(),
        Some("A Dark Cave")
    );
    assert_eq!(value("muc#roomconfig_persistentroom").as_deref(), Some("1"));
    assert_eq!(value("muc#roomconfig_whois").as_deref(), Some("anyone"));
}

#[tokio::test]
async fn a_password_protected_room_without_a_password_is_not_acceptable() {
    let s = muc::server().await;
    let (mut a, _b, r) = owner_and_guest(&s, "coven").await;
    let res = a
        .configure_room(&r, &[("muc#roomconfig_passwordprotectedroom", "1")])
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("not-acceptable"));
}

#[tokio::test]
async fn values_beyond_the_services_limits_are_not_acceptable() {
    let s = muc::server_with(|c| c.muc.max_occupants = 20).await;
    let (mut a, _b, r) = owner_and_guest(&s, "coven").await;
    let res = a
        .configure_room(&r, &[("muc#roomconfig_maxusers", "1000")])
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("not-acceptable"));
    let res = a
        .configure_room(&r, &[("muc#maxhistoryfetch", "100000")])
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("not-acceptable"));
    let res = a
        .configure_room(&r, &[("muc#roomconfig_publicroom", "perhaps")])
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn occupants_are_told_of_configuration_changes() {
    let s = muc::server().await;
    let (mut a, mut b, r) = owner_and_guest(&s, "coven").await;
    a.configure_room(&r, &[("muc#roomconfig_whois", "anyone")])
        .await;
    let m = b
        .expect("notice", |e| {
            e.name() == "message" && e.get_child("x", MUC_USER).is_some()
        })
        .await;
    assert_eq!(m.attr("from"), Some(r.as_str()));
    assert_eq!(status_codes(&m), vec![172]);
    a.configure_room(&r, &[("muc#roomconfig_roomname", "Renamed")])
        .await;
    let m = b
        .expect("notice", |e| {
            e.name() == "message" && e.get_child("x", MUC_USER).is_some()
        })
        .await;
    assert_eq!(status_codes(&m), vec![104]);
    a.configure_room(&r, &[("muc#roomconfig_enablearchiving", "0")])
        .await;
    let m = b
        .expect("notice", |e| {
            e.name() == "message" && e.get_child("x", MUC_USER).is_some()
        })
        .await;
    assert_eq!(status_codes(&m), vec![171]);
}

#[tokio::test]
async fn cancelling_a_later_configuration_changes_nothing() {
    let s = muc::server().await;
    let (mut a, mut b, r) = owner_and_guest(&s, "coven").await;
    let res = a
        .iq(
            "set",
            Some(&r),
            &format!("<query xmlns='{MUC_OWNER}'><x xmlns='{DATA}' type='cancel'/></query>"),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    a.say(&r, "still open").await;
    b.expect_groupchat("still open").await;
}

#[tokio::test]
async fn destroying_a_room_removes_everyone_with_reason_and_alternate_venue() {
    let s = muc::server().await;
    let (mut a, mut b, r) = owner_and_guest(&s, "heath").await;
    a.configure_room(&r, &[("muc#roomconfig_persistentroom", "1")])
        .await;
    let res = a
        .iq(
            "set",
            Some(&r),
            &format!(
                "<query xmlns='{MUC_OWNER}'><destroy jid='{}'><reason>Macbeth doth come.</reason></destroy></query>",
                room("coven")
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    for c in [&mut a, &mut b] {
        let p = c
            .expect("destroyed", |e| {
                e.name() == "presence"
                    && e.attr("type") == Some("unavailable")
                    && e.get_child("x", MUC_USER)
                        .is_some_and(|x| x.get_child("destroy", MUC_USER).is_some())
            })
            .await;
        let d = p
            .get_child("x", MUC_USER)
            .unwrap()
            .get_child("destroy", MUC_USER)
            .unwrap();
        assert_eq!(d.attr("jid"), Some(&*room("coven")));
        assert_eq!(
            d.get_child("reason", MUC_USER).unwrap().text(),
            "Macbeth doth come."
        );
    }
    // Exactly one presence each: nobody hears the others leave.
    assert!(b
        .gets_within(SHORT, |e| {
            is_presence_from(e, &format!("{r}/crone")) && e.attr("type") == Some("unavailable")
        })
        .await
        .is_none());
    let info = b
        .iq("get", Some(&r), &format!("<query xmlns='{DISCO_INFO}'/>"))
        .await;
    assert_eq!(error_condition(&info).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn only_owners_may_destroy_a_room() {
    let s = muc::server().await;
    let (_a, mut b, r) = owner_and_guest(&s, "coven").await;
    let res = b
        .iq(
            "set",
            Some(&r),
            &format!("<query xmlns='{MUC_OWNER}'><destroy/></query>"),
        )
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn an_owner_who_is_not_in_the_room_can_still_configure_it() {
    let s = muc::server().await;
    let (mut a, mut b, r) = owner_and_guest(&s, "coven").await;
    a.configure_room(&r, &[("muc#roomconfig_persistentroom", "1")])
        .await;
    a.leave_room(&r, "crone").await;
    let res = a
        .configure_room(&r, &[("muc#roomconfig_roomname", "From afar")])
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let m = b
        .expect("notice", |e| e.name() == "message" && has_status(e, 104))
        .await;
    assert_eq!(m.attr("from"), Some(r.as_str()));
}

#[tokio::test]
async fn a_persistent_room_outlives_its_last_occupant() {
    let s = muc::server().await;
    let (mut a, mut b, r) = owner_and_guest(&s, "hall").await;
    a.configure_room(&r, &[("muc#roomconfig_persistentroom", "1")])
        .await;
    b.leave_room(&r, "bob").await;
    a.leave_room(&r, "crone").await;
    let own = b.join_room(&r, "bob").await;
    assert!(!has_status(&own, 201));
}
