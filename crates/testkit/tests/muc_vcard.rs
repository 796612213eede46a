//! XEP-0486 room avatars over sockets: owners set the room's vCard, anyone
//! reads it, the avatar hash is in the room's disco#info, occupants are
//! told (104), and it survives a restart.

use minidom::Element;
use roost_testkit::muc::{self, error_condition, has_status, room};

const VCARD: &str = "vcard-temp";
const INFO: &str = "http://jabber.org/protocol/disco#info";
// base64 of the bytes "abc", whose SHA-1 is below (FIPS 180).
const PHOTO: &str = "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>\
    <BINVAL>YWJj</BINVAL></PHOTO></vCard>";
const HASH: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";

fn avatar_hash(info: &Element) -> Option<String> {
    let q = info.get_child("query", INFO)?;
    let x = q.get_child("x", "jabber:x:data")?;
    x.children()
        .find(|f| f.attr("var") == Some("muc#roominfo_avatarhash"))
        .and_then(|f| f.children().next())
        .map(|v| v.text())
}

fn features(info: &Element) -> Vec<String> {
    info.get_child("query", INFO)
        .map(|q| {
            q.children()
                .filter_map(|f| f.attr("var").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn owners_set_the_room_avatar_and_everyone_sees_its_hash() {
    let s = muc::server().await;
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
    let mut a = s.login("alice", "home").await;
    let r = room("pictured");
    a.create_room(&r, "owner").await;
    let mut b = s.login("bob", "home").await;
    b.join_room(&r, "bob").await;
    let info = b
        .iq("get", Some(&r), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert!(features(&info).contains(&VCARD.to_string()));
    assert_eq!(avatar_hash(&info), None);
    // No vCard yet: an empty one.
    let v = b
        .iq("get", Some(&r), &format!("<vCard xmlns='{VCARD}'/>"))
        .await;
    let card = v.get_child("vCard", VCARD).expect("vCard");
    assert!(card.children().next().is_none());
    // A participant may not set it.
    let refused = b.iq("set", Some(&r), PHOTO).await;
    assert_eq!(error_condition(&refused).as_deref(), Some("forbidden"));
    // The owner does; occupants hear 104.
    let ok = a.iq("set", Some(&r), PHOTO).await;
    assert_eq!(ok.attr("type"), Some("result"), "{}", String::from(&ok));
    b.expect("status 104", |e| {
        e.name() == "message" && has_status(e, 104)
    })
    .await;
    // Someone outside the room sees the hash and fetches the photo.
    let mut c = s.login("carol", "home").await;
    let info = c
        .iq("get", Some(&r), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert_eq!(avatar_hash(&info).as_deref(), Some(HASH));
    let v = c
        .iq("get", Some(&r), &format!("<vCard xmlns='{VCARD}'/>"))
        .await;
    let binval = v
        .get_child("vCard", VCARD)
        .and_then(|v| v.get_child("PHOTO", VCARD))
        .and_then(|p| p.get_child("BINVAL", VCARD))
        .map(|b| b.text());
    assert_eq!(binval.as_deref(), Some("YWJj"));
    // Kept across a restart (the room is persistent once configured).
    a.configure_room(&r, &[("muc#roomconfig_persistentroom", "1")])
        .await;
    drop((a, b, c));
    let s = s.restart().await;
    let mut a = s.login("alice", "home").await;
    let info = a
        .iq("get", Some(&r), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert_eq!(avatar_hash(&info).as_deref(), Some(HASH));
    // An empty vCard removes the avatar.
    let ok = a
        .iq("set", Some(&r), &format!("<vCard xmlns='{VCARD}'/>"))
        .await;
    assert_eq!(ok.attr("type"), Some("result"));
    let info = a
        .iq("get", Some(&r), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert_eq!(avatar_hash(&info), None);
}
