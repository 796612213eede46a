//! XEP-0313 on room JIDs over sockets: the room archive with XEP-0059
//! paging, time and occupant filters, its access rules, and its ids being
//! the XEP-0359 stanza-ids seen live.

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::muc::{self, error_condition, field, room};
use roost_testkit::{Client, TestServer};

const MAM: &str = "urn:xmpp:mam:2";
const RSM: &str = "http://jabber.org/protocol/rsm";
const FORWARD: &str = "urn:xmpp:forward:0";

/// A query's result messages (bodies and ids) and its `<fin/>`.
struct Page {
    bodies: Vec<String>,
    ids: Vec<String>,
    stamps: Vec<String>,
    fin: Element,
}

async fn query(c: &mut Client, r: &str, inner: &str) -> Result<Page, Element> {
    let qid = c.new_id();
    let res = c
        .iq(
            "set",
            Some(r),
            &format!("<query xmlns='{MAM}' queryid='{qid}'>{inner}</query>"),
        )
        .await;
    if res.attr("type") != Some("result") {
        return Err(res);
    }
    let mut page = Page {
        bodies: Vec::new(),
        ids: Vec::new(),
        stamps: Vec::new(),
        fin: res.get_child("fin", MAM).cloned().expect("fin"),
    };
    let is_result = |e: &Element| {
        e.get_child("result", MAM)
            .is_some_and(|r| r.attr("queryid") == Some(qid.as_str()))
    };
    while let Some(m) = c.gets_within(Duration::from_millis(100), is_result).await {
        let result = m.get_child("result", MAM).unwrap();
        let fwd = result.get_child("forwarded", FORWARD).unwrap();
        let msg = fwd.get_child("message", "jabber:client").unwrap();
        page.bodies.push(body(msg).unwrap_or_default());
        page.ids.push(result.attr("id").unwrap().to_string());
        page.stamps.push(
            fwd.get_child("delay", "urn:xmpp:delay")
                .and_then(|d| d.attr("stamp"))
                .unwrap()
                .to_string(),
        );
    }
    Ok(page)
}

fn complete(fin: &Element) -> bool {
    fin.attr("complete") == Some("true")
}

fn rsm(max: usize, extra: &str) -> String {
    format!("<set xmlns='{RSM}'><max>{max}</max>{extra}</set>")
}

/// alice's room with five messages "m1" … "m5".
async fn room_with_five(s: &TestServer) -> (Client, String) {
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = room("annals");
    a.create_room(&r, "crone").await;
    for i in 1..=5 {
        a.say(&r, &format!("m{i}")).await;
        a.expect_groupchat(&format!("m{i}")).await;
        // Stamps have millisecond precision: keep each message in its own
        // millisecond so that time bounds can tell them apart.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (a, r)
}

#[tokio::test]
async fn the_room_archive_pages_forward_with_rsm() {
    let s = muc::server().await;
    let (mut a, r) = room_with_five(&s).await;
    let p1 = query(&mut a, &r, &rsm(2, "")).await.unwrap();
    assert_eq!(p1.bodies, ["m1", "m2"]);
    assert!(!complete(&p1.fin));
    let last = p1
        .fin
        .get_child("set", RSM)
        .unwrap()
        .get_child("last", RSM)
        .unwrap()
        .text();
    assert_eq!(last, p1.ids[1]);
    let p2 = query(&mut a, &r, &rsm(2, &format!("<after>{last}</after>")))
        .await
        .unwrap();
    assert_eq!(p2.bodies, ["m3", "m4"]);
    let p3 = query(
        &mut a,
        &r,
        &rsm(2, &format!("<after>{}</after>", p2.ids[1])),
    )
    .await
    .unwrap();
    assert_eq!(p3.bodies, ["m5"]);
    assert!(complete(&p3.fin));
}

#[tokio::test]
async fn an_empty_before_gives_the_last_page_and_before_pages_back() {
    let s = muc::server().await;
    let (mut a, r) = room_with_five(&s).await;
    let last = query(&mut a, &r, &rsm(2, "<before/>")).await.unwrap();
    assert_eq!(last.bodies, ["m4", "m5"]);
    assert!(!complete(&last.fin));
    let earlier = query(
        &mut a,
        &r,
        &rsm(3, &format!("<before>{}</before>", last.ids[0])),
    )
    .await
    .unwrap();
    assert_eq!(earlier.bodies, ["m1", "m2", "m3"]);
    assert!(complete(&earlier.fin));
    let flipped = query(&mut a, &r, &format!("{}<flip-page/>", rsm(2, "<before/>")))
        .await
        .unwrap();
    assert_eq!(flipped.bodies, ["m5", "m4"]);
}

#[tokio::test]
async fn start_and_end_limit_the_archive_by_time() {
    let s = muc::server().await;
    let (mut a, r) = room_with_five(&s).await;
    let all = query(&mut a, &r, "").await.unwrap();
    assert_eq!(all.bodies.len(), 5);
    assert!(complete(&all.fin));
    let form = format!(
        "<x xmlns='jabber:x:data' type='submit'>{}{}{}</x>",
        field("FORM_TYPE", MAM),
        field("start", &all.stamps[1]),
        field("end", &all.stamps[3])
    );
    let window = query(&mut a, &r, &form).await.unwrap();
    assert_eq!(window.bodies, ["m2", "m3", "m4"]);
}

#[tokio::test]
async fn with_limits_the_archive_to_one_occupant() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("annals");
    a.create_room(&r, "crone").await;
    b.join_room(&r, "bob").await;
    a.say(&r, "from alice").await;
    a.expect_groupchat("from alice").await;
    b.say(&r, "from bob").await;
    a.expect_groupchat("from bob").await;
    let form = format!(
        "<x xmlns='jabber:x:data' type='submit'>{}{}</x>",
        field("FORM_TYPE", MAM),
        field("with", &format!("{r}/bob"))
    );
    let page = query(&mut a, &r, &form).await.unwrap();
    assert_eq!(page.bodies, ["from bob"]);
}

#[tokio::test]
async fn archive_ids_are_the_stanza_ids_seen_live() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = room("annals");
    a.create_room(&r, "crone").await;
    a.say(&r, "tracked").await;
    let live = a.expect_groupchat("tracked").await;
    let sid = live
        .get_child("stanza-id", "urn:xmpp:sid:0")
        .and_then(|s| s.attr("id"))
        .unwrap()
        .to_string();
    let page = query(&mut a, &r, "").await.unwrap();
    assert_eq!(page.ids, [sid]);
}

#[tokio::test]
async fn an_unknown_rsm_id_is_item_not_found() {
    let s = muc::server().await;
    let (mut a, r) = room_with_five(&s).await;
    let e = query(&mut a, &r, &rsm(2, "<after>no-such-id</after>"))
        .await
        .err()
        .unwrap();
    assert_eq!(error_condition(&e).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn a_members_only_rooms_archive_is_for_members() {
    let s = muc::server().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "home").await;
    let r = room("club");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_membersonly", "1")])
        .await;
    a.say(&r, "members' secrets").await;
    a.expect_groupchat("members' secrets").await;
    let e = query(&mut b, &r, "").await.err().unwrap();
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    a.admin_set(&r, "<item affiliation='member' jid='bob@localhost'/>")
        .await;
    let page = query(&mut b, &r, "").await.unwrap();
    assert_eq!(page.bodies, ["members' secrets"]);
}

#[tokio::test]
async fn with_archiving_off_nothing_is_archived_or_stamped() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = room("quiet");
    a.create_configured_room(&r, "crone", &[("muc#roomconfig_enablearchiving", "0")])
        .await;
    a.say(&r, "off the record").await;
    let m = a.expect_groupchat("off the record").await;
    assert!(m.get_child("stanza-id", "urn:xmpp:sid:0").is_none());
    assert!(m
        .get_child("occupant-id", "urn:xmpp:occupant-id:0")
        .is_some());
    let page = query(&mut a, &r, "").await.unwrap();
    assert!(page.bodies.is_empty());
    assert!(complete(&page.fin));
}

#[tokio::test]
async fn the_archive_form_lists_the_supported_fields() {
    let s = muc::server().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = room("annals");
    a.create_room(&r, "crone").await;
    let res = a
        .iq("get", Some(&r), &format!("<query xmlns='{MAM}'/>"))
        .await;
    let x = res
        .get_child("query", MAM)
        .and_then(|q| q.get_child("x", "jabber:x:data"))
        .unwrap();
    let vars: Vec<&str> = x.children().filter_map(|f| f.attr("var")).collect();
    for v in ["FORM_TYPE", "with", "start", "end"] {
        assert!(vars.contains(&v), "{v} in {vars:?}");
    }
}
