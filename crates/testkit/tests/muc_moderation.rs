//! XEP-0045 §8–§10 (`muc#admin`) and §7.10 (registration) over sockets:
//! kick, ban, voice, moderator status, the member, admin, owner and ban
//! lists, with the permission rules of §5.

use std::time::Duration;

use roost_testkit::muc::{
    self, error_condition, has_status, is_presence_from, item, room, status_codes, MUC_ADMIN,
    MUC_USER,
};
use roost_testkit::{Client, TestServer};

const SHORT: Duration = Duration::from_millis(300);

/// alice (owner "crone"), bob ("bob") and carol ("carol") in a room
/// configured with `fields`.
async fn three_in_a_room(
    s: &TestServer,
    name: &str,
    fields: &[(&str, &str)],
) -> (Client, Client, Client, String) {
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let mut c = s.login("carol", "home").await;
    let r = room(name);
    a.create_configured_room(&r, "crone", fields).await;
    b.join_room(&r, "bob").await;
    c.join_room(&r, "carol").await;
    for nick in ["bob", "carol"] {
        a.expect("enters", |e| is_presence_from(e, &format!("{r}/{nick}")))
            .await;
    }
    b.expect("carol enters", |e| {
        is_presence_from(e, &format!("{r}/carol"))
    })
    .await;
    (a, b, c, r)
}

fn admin_items(res: &minidom::Element) -> Vec<(String, String)> {
    res.get_child("query", MUC_ADMIN)
        .map(|q| {
            q.children()
                .map(|i| {
                    (
                        i.attr("jid").unwrap_or_default().to_string(),
                        i.attr("nick").unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_moderator_kicks_a_participant_with_307_actor_and_reason() {
    let s = muc::server().await;
    let (mut a, mut b, mut c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = a
        .admin_set(
            &r,
            "<item nick='bob' role='none'><reason>Avaunt, you cullion!</reason></item>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let kicked = b
        .expect("kick", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(status_codes(&kicked), vec![110, 307]);
    let i = item(&kicked).unwrap();
    assert_eq!(i.attr("role"), Some("none"));
    assert_eq!(
        i.get_child("actor", MUC_USER).unwrap().attr("nick"),
        Some("crone")
    );
    assert_eq!(
        i.get_child("reason", MUC_USER).unwrap().text(),
        "Avaunt, you cullion!"
    );
    let seen = c
        .expect("bob kicked", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(status_codes(&seen), vec![307]);
    // Kicked, not banned: bob may come back.
    b.join_room(&r, "bob").await;
}

#[tokio::test]
async fn a_participant_may_not_kick() {
    let s = muc::server().await;
    let (mut _a, mut b, mut c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = b.admin_set(&r, "<item nick='carol' role='none'/>").await;
    assert_eq!(error_condition(&res).as_deref(), Some("forbidden"));
    assert!(c
        .gets_within(SHORT, |e| e.attr("type") == Some("unavailable"))
        .await
        .is_none());
}

#[tokio::test]
async fn an_admin_may_not_kick_an_owner() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    a.admin_set(&r, "<item affiliation='admin' jid='bob@localhost'/>")
        .await;
    let res = b.admin_set(&r, "<item nick='crone' role='none'/>").await;
    assert_eq!(error_condition(&res).as_deref(), Some("not-allowed"));
}

#[tokio::test]
async fn kicking_an_unknown_nick_is_item_not_found() {
    let s = muc::server().await;
    let (mut a, _b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = a.admin_set(&r, "<item nick='ghost' role='none'/>").await;
    assert_eq!(error_condition(&res).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn a_ban_removes_the_user_with_301_and_keeps_them_out() {
    let s = muc::server().await;
    let (mut a, mut b, mut c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = a
        .admin_set(
            &r,
            "<item affiliation='outcast' jid='bob@localhost'><reason>Treason</reason></item>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let banned = b
        .expect("ban", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(status_codes(&banned), vec![110, 301]);
    assert_eq!(item(&banned).unwrap().attr("affiliation"), Some("outcast"));
    let seen = c
        .expect("bob banned", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert!(has_status(&seen, 301));
    let e = b.join_room_with(&r, "bob", "").await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn the_ban_list_can_be_read_and_a_ban_lifted() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    a.admin_set(
        &r,
        "<item affiliation='outcast' jid='bob@localhost'><reason>Treason</reason></item>\
         <item affiliation='outcast' jid='mallory@evil.example'/>",
    )
    .await;
    let list = a
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{MUC_ADMIN}'><item affiliation='outcast'/></query>"),
        )
        .await;
    let jids: Vec<String> = admin_items(&list).into_iter().map(|(j, _)| j).collect();
    assert_eq!(jids, ["bob@localhost", "mallory@evil.example"]);
    let reason = list
        .get_child("query", MUC_ADMIN)
        .unwrap()
        .children()
        .find(|i| i.attr("jid") == Some("bob@localhost"))
        .and_then(|i| i.get_child("reason", MUC_ADMIN))
        .map(|r| r.text());
    assert_eq!(reason.as_deref(), Some("Treason"));
    a.admin_set(&r, "<item affiliation='none' jid='bob@localhost'/>")
        .await;
    b.join_room(&r, "bob").await;
}

#[tokio::test]
async fn an_admin_may_not_ban_an_owner_or_themselves() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    a.admin_set(&r, "<item affiliation='admin' jid='bob@localhost'/>")
        .await;
    let res = b
        .admin_set(&r, "<item affiliation='outcast' jid='alice@localhost'/>")
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("not-allowed"));
    let res = b
        .admin_set(&r, "<item affiliation='outcast' jid='bob@localhost'/>")
        .await;
    // An admin may not touch admins either; owners get conflict for themselves.
    assert!(matches!(
        error_condition(&res).as_deref(),
        Some("not-allowed") | Some("conflict")
    ));
    let res = a
        .admin_set(&r, "<item affiliation='outcast' jid='alice@localhost'/>")
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("conflict"));
}

#[tokio::test]
async fn a_request_with_one_forbidden_item_changes_nothing() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    a.admin_set(&r, "<item affiliation='admin' jid='bob@localhost'/>")
        .await;
    let res = b
        .admin_set(
            &r,
            "<item affiliation='outcast' jid='carol@localhost'/>\
             <item affiliation='outcast' jid='alice@localhost'/>",
        )
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("not-allowed"));
    let list = a
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{MUC_ADMIN}'><item affiliation='outcast'/></query>"),
        )
        .await;
    assert!(admin_items(&list).is_empty());
}

#[tokio::test]
async fn voice_is_granted_and_revoked_in_a_moderated_room() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) =
        three_in_a_room(&s, "stage", &[("muc#roomconfig_moderatedroom", "1")]).await;
    let res = a
        .admin_set(&r, "<item nick='bob' role='participant'/>")
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let p = b
        .expect("voice", |e| {
            is_presence_from(e, &format!("{r}/bob"))
                && item(e).and_then(|i| i.attr("role")) == Some("participant")
        })
        .await;
    assert!(has_status(&p, 110));
    b.say(&r, "I may speak").await;
    a.expect_groupchat("I may speak").await;
    let res = a.admin_set(&r, "<item nick='bob' role='visitor'/>").await;
    assert_eq!(res.attr("type"), Some("result"));
    b.expect("no voice", |e| {
        is_presence_from(e, &format!("{r}/bob"))
            && item(e).and_then(|i| i.attr("role")) == Some("visitor")
    })
    .await;
    b.say(&r, "silenced").await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn voice_cannot_be_revoked_from_an_admin() {
    let s = muc::server().await;
    let (mut a, _b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    a.admin_set(&r, "<item affiliation='admin' jid='bob@localhost'/>")
        .await;
    let res = a.admin_set(&r, "<item nick='bob' role='visitor'/>").await;
    assert_eq!(error_condition(&res).as_deref(), Some("not-allowed"));
}

#[tokio::test]
async fn an_admin_grants_and_revokes_moderator_status() {
    let s = muc::server().await;
    let (mut a, mut b, mut c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = a.admin_set(&r, "<item nick='bob' role='moderator'/>").await;
    assert_eq!(res.attr("type"), Some("result"));
    b.expect("moderator", |e| {
        is_presence_from(e, &format!("{r}/bob"))
            && item(e).and_then(|i| i.attr("role")) == Some("moderator")
    })
    .await;
    // As a moderator of a semi-anonymous room, bob now sees carol's JID.
    let p = b
        .expect("carol with jid", |e| {
            is_presence_from(e, &format!("{r}/carol"))
                && item(e).and_then(|i| i.attr("jid")).is_some()
        })
        .await;
    assert_eq!(item(&p).unwrap().attr("jid"), Some("carol@localhost/home"));
    // A mere moderator may not make moderators.
    let res = b
        .admin_set(&r, "<item nick='carol' role='moderator'/>")
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("forbidden"));
    // But may kick.
    let res = b.admin_set(&r, "<item nick='carol' role='none'/>").await;
    assert_eq!(res.attr("type"), Some("result"));
    c.expect("kicked", |e| has_status(e, 307)).await;
    let res = a
        .admin_set(&r, "<item nick='bob' role='participant'/>")
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    b.expect("no longer moderator", |e| {
        is_presence_from(e, &format!("{r}/bob"))
            && item(e).and_then(|i| i.attr("role")) == Some("participant")
    })
    .await;
}

#[tokio::test]
async fn the_moderator_list_is_for_moderators() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    let q = format!("<query xmlns='{MUC_ADMIN}'><item role='participant'/></query>");
    let list = a.iq("get", Some(&r), &q).await;
    let nicks: Vec<String> = admin_items(&list).into_iter().map(|(_, n)| n).collect();
    assert_eq!(nicks, ["bob", "carol"]);
    let refused = b.iq("get", Some(&r), &q).await;
    assert_eq!(error_condition(&refused).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn granting_membership_updates_the_occupant_and_the_member_list() {
    let s = muc::server().await;
    let (mut a, mut b, mut c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = a
        .admin_set(
            &r,
            "<item affiliation='member' jid='bob@localhost' nick='bob'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let p = c
        .expect("bob is a member", |e| {
            is_presence_from(e, &format!("{r}/bob"))
                && item(e).and_then(|i| i.attr("affiliation")) == Some("member")
        })
        .await;
    assert_eq!(p.attr("type"), None);
    b.expect("own update", |e| {
        is_presence_from(e, &format!("{r}/bob")) && has_status(e, 110)
    })
    .await;
    let list = a
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{MUC_ADMIN}'><item affiliation='member'/></query>"),
        )
        .await;
    assert_eq!(
        admin_items(&list),
        vec![("bob@localhost".to_string(), "bob".to_string())]
    );
    // A participant may not read it in a semi-anonymous room.
    let refused = c
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{MUC_ADMIN}'><item affiliation='member'/></query>"),
        )
        .await;
    assert_eq!(error_condition(&refused).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn losing_membership_of_a_members_only_room_removes_with_321() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("club");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_membersonly", "1")])
        .await;
    a.admin_set(&r, "<item affiliation='member' jid='bob@localhost'/>")
        .await;
    b.join_room(&r, "bob").await;
    let res = a
        .admin_set(&r, "<item affiliation='none' jid='bob@localhost'/>")
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let gone = b
        .expect("removed", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(status_codes(&gone), vec![110, 321]);
}

#[tokio::test]
async fn making_a_room_members_only_removes_non_members_with_322() {
    let s = muc::server().await;
    let (mut a, mut b, mut c, r) = three_in_a_room(&s, "coven", &[]).await;
    a.admin_set(&r, "<item affiliation='member' jid='carol@localhost'/>")
        .await;
    let res = a
        .configure_room(&r, &[("muc#roomconfig_membersonly", "1")])
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let gone = b
        .expect("removed", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert_eq!(status_codes(&gone), vec![110, 322]);
    let seen = c
        .expect("bob removed", |e| {
            is_presence_from(e, &format!("{r}/bob")) && e.attr("type") == Some("unavailable")
        })
        .await;
    assert!(has_status(&seen, 322));
    // Carol, a member, stays.
    a.say(&r, "members only now").await;
    c.expect_groupchat("members only now").await;
}

#[tokio::test]
async fn an_owner_makes_an_admin_who_becomes_moderator() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = a
        .admin_set(&r, "<item affiliation='admin' jid='bob@localhost'/>")
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let p = b
        .expect("admin", |e| {
            is_presence_from(e, &format!("{r}/bob"))
                && item(e).and_then(|i| i.attr("affiliation")) == Some("admin")
        })
        .await;
    assert_eq!(item(&p).unwrap().attr("role"), Some("moderator"));
    let list = a
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{MUC_ADMIN}'><item affiliation='admin'/></query>"),
        )
        .await;
    assert_eq!(admin_items(&list)[0].0, "bob@localhost");
    // An admin may not make owners.
    let res = b
        .admin_set(&r, "<item affiliation='owner' jid='bob@localhost'/>")
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn the_last_owner_may_not_step_down_but_one_of_two_may() {
    let s = muc::server().await;
    let (mut a, _b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = a
        .admin_set(&r, "<item affiliation='admin' jid='alice@localhost'/>")
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("conflict"));
    a.admin_set(&r, "<item affiliation='owner' jid='bob@localhost'/>")
        .await;
    let res = a
        .admin_set(&r, "<item affiliation='admin' jid='alice@localhost'/>")
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    let list = a
        .iq(
            "get",
            Some(&r),
            &format!("<query xmlns='{MUC_ADMIN}'><item affiliation='owner'/></query>"),
        )
        .await;
    // Alice is an admin now: in a semi-anonymous room only owners read it.
    assert_eq!(error_condition(&list).as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn an_item_with_both_role_and_affiliation_is_a_bad_request() {
    let s = muc::server().await;
    let (mut a, _b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    let res = a
        .admin_set(
            &r,
            "<item nick='bob' role='none' affiliation='outcast' jid='bob@localhost'/>",
        )
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("bad-request"));
    let res = a.admin_set(&r, "<item nick='bob'/>").await;
    assert_eq!(error_condition(&res).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn registering_reserves_a_nick_and_makes_a_member() {
    let s = muc::server().await;
    let (mut a, mut b, mut c, r) = three_in_a_room(&s, "coven", &[]).await;
    let form = b
        .iq("get", Some(&r), "<query xmlns='jabber:iq:register'/>")
        .await;
    assert_eq!(form.attr("type"), Some("result"));
    let res = b
        .iq(
            "set",
            Some(&r),
            &format!(
                "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>{}{}</x></query>",
                muc::field("FORM_TYPE", "http://jabber.org/protocol/muc#register"),
                muc::field("muc#register_roomnick", "thirdwitch")
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    a.expect("bob is a member", |e| {
        is_presence_from(e, &format!("{r}/bob"))
            && item(e).and_then(|i| i.attr("affiliation")) == Some("member")
    })
    .await;
    // §7.12: the reserved nick can be discovered.
    let nick = b
        .iq(
            "get",
            Some(&r),
            "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>",
        )
        .await;
    let id = nick
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .and_then(|q| q.get_child("identity", "http://jabber.org/protocol/disco#info"))
        .unwrap();
    assert_eq!(id.attr("name"), Some("thirdwitch"));
    // Already registered.
    let again = b
        .iq("get", Some(&r), "<query xmlns='jabber:iq:register'/>")
        .await;
    let q = again.get_child("query", "jabber:iq:register").unwrap();
    assert!(q.get_child("registered", "jabber:iq:register").is_some());
    // Carol may not take the reserved nick.
    c.send(&format!("<presence to='{r}/thirdwitch'/>")).await;
    let e = c
        .expect("conflict", |e| e.attr("type") == Some("error"))
        .await;
    assert_eq!(error_condition(&e).as_deref(), Some("conflict"));
}

#[tokio::test]
async fn registering_a_reserved_nick_is_a_conflict() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    a.admin_set(
        &r,
        "<item affiliation='member' jid='carol@localhost' nick='hecate'/>",
    )
    .await;
    let res = b
        .iq(
            "set",
            Some(&r),
            &format!(
                "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>{}</x></query>",
                muc::field("muc#register_roomnick", "hecate")
            ),
        )
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("conflict"));
    let res = b
        .iq(
            "set",
            Some(&r),
            "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'/></query>",
        )
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn a_banned_user_may_not_register() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) = three_in_a_room(&s, "coven", &[]).await;
    a.admin_set(&r, "<item affiliation='outcast' jid='bob@localhost'/>")
        .await;
    let res = b
        .iq("get", Some(&r), "<query xmlns='jabber:iq:register'/>")
        .await;
    assert_eq!(error_condition(&res).as_deref(), Some("forbidden"));
    let _ = MUC_USER;
}

fn voice_request() -> String {
    "<x xmlns='jabber:x:data' type='submit'>\
     <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
     <field var='muc#role' type='list-single'><value>participant</value></field></x>"
        .to_string()
}

fn approval_form(e: &minidom::Element) -> Option<&minidom::Element> {
    e.get_child("x", "jabber:x:data")
        .filter(|x| x.attr("type") == Some("form"))
        .filter(|x| {
            field_value(x, "FORM_TYPE").as_deref() == Some("http://jabber.org/protocol/muc#request")
        })
}

fn field_value(x: &minidom::Element, var: &str) -> Option<String> {
    x.children()
        .find(|f| f.attr("var") == Some(var))
        .and_then(|f| f.children().next())
        .map(|v| v.text())
}

#[tokio::test]
async fn a_visitor_requests_voice_and_a_moderator_grants_it() {
    let s = muc::server().await;
    let (mut a, mut b, _c, r) =
        three_in_a_room(&s, "askers", &[("muc#roomconfig_moderatedroom", "1")]).await;
    b.send(&format!(
        "<message to='{r}' id='vr1'>{}</message>",
        voice_request()
    ))
    .await;
    // The moderator (alice, owner) gets the approval form.
    let m = a
        .expect("approval form", |e| {
            e.name() == "message" && approval_form(e).is_some()
        })
        .await;
    assert_eq!(m.attr("from"), Some(r.as_str()));
    let x = approval_form(&m).unwrap();
    assert_eq!(field_value(x, "muc#roomnick").as_deref(), Some("bob"));
    assert_eq!(
        field_value(x, "muc#jid").as_deref(),
        Some("bob@localhost/home")
    );
    assert_eq!(
        field_value(x, "muc#request_allow").as_deref(),
        Some("false")
    );
    // A second request while one waits is not passed on again.
    b.send(&format!(
        "<message to='{r}' id='vr2'>{}</message>",
        voice_request()
    ))
    .await;
    assert!(a
        .gets_within(Duration::from_millis(500), |e| approval_form(e).is_some())
        .await
        .is_none());
    // Approve.
    a.send(&format!(
        "<message to='{r}' id='ok'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
         <field var='muc#role'><value>participant</value></field>\
         <field var='muc#jid'><value>bob@localhost/home</value></field>\
         <field var='muc#roomnick'><value>bob</value></field>\
         <field var='muc#request_allow'><value>true</value></field></x></message>"
    ))
    .await;
    let p = b
        .expect("voice", |e| {
            is_presence_from(e, &format!("{r}/bob"))
                && item(e).and_then(|i| i.attr("role")) == Some("participant")
        })
        .await;
    assert!(has_status(&p, 110));
    b.say(&r, "thank you").await;
    a.expect_groupchat("thank you").await;
}

#[tokio::test]
async fn a_denied_voice_request_leaves_the_visitor_silent_and_non_moderators_cannot_answer() {
    let s = muc::server().await;
    let (mut a, mut b, mut c, r) =
        three_in_a_room(&s, "deniers", &[("muc#roomconfig_moderatedroom", "1")]).await;
    let answer = |allow: &str| {
        format!(
            "<message to='{r}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
             <field var='muc#roomnick'><value>bob</value></field>\
             <field var='muc#request_allow'><value>{allow}</value></field></x></message>"
        )
    };
    b.send(&format!("<message to='{r}'>{}</message>", voice_request()))
        .await;
    a.expect("approval form", |e| approval_form(e).is_some())
        .await;
    // carol is a visitor, not a moderator: she cannot approve.
    c.send(&answer("true")).await;
    let e = c
        .expect("forbidden", |e| e.attr("type") == Some("error"))
        .await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    a.send(&answer("false")).await;
    assert!(b
        .gets_within(Duration::from_millis(500), |e| {
            is_presence_from(e, &format!("{r}/bob"))
                && item(e).and_then(|i| i.attr("role")) == Some("participant")
        })
        .await
        .is_none());
    b.say(&r, "still silent").await;
    let e = b.expect("error", |e| e.attr("type") == Some("error")).await;
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    // Denied, so a new request reaches the moderator again.
    b.send(&format!("<message to='{r}'>{}</message>", voice_request()))
        .await;
    a.expect("a new approval form", |e| approval_form(e).is_some())
        .await;
}
