//! XEP-0398 over sockets: a PEP avatar (XEP-0084) becomes the vCard photo,
//! a vCard photo becomes the PEP avatar, and the avatar's hash goes into
//! every available presence (XEP-0153), room joins of account-based
//! joining included, unless the client's own `<photo/>` says otherwise.

use jid::BareJid;
use minidom::Element;
use roost_store::{RosterItem, Subscription};
use roost_testkit::muc::room;
use roost_testkit::{Client, TestServer};

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const DATA: &str = "urn:xmpp:avatar:data";
const METADATA: &str = "urn:xmpp:avatar:metadata";
const VCARD: &str = "vcard-temp";
const UPDATE: &str = "vcard-temp:x:update";
const CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";
// "abc": base64 and SHA-1 (FIPS 180 test vector).
const B64: &str = "YWJj";
const HASH: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";

async fn mutual(s: &TestServer, a: &str, b: &str) {
    let stores = &s.running.server.stores;
    for (x, y) in [(a, b), (b, a)] {
        let owner = BareJid::new(&format!("{x}@localhost")).unwrap();
        let item = RosterItem {
            subscription: Subscription::Both,
            ..RosterItem::new(BareJid::new(&format!("{y}@localhost")).unwrap())
        };
        stores.roster.put_roster_item(&owner, &item).await.unwrap();
    }
}

fn photo_hash(p: &Element) -> Option<String> {
    p.get_child("x", UPDATE)
        .and_then(|x| x.get_child("photo", UPDATE))
        .map(|p| p.text())
}

async fn publish(c: &mut Client, node: &str, id: &str, payload: &str) {
    let r = c
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{id}'>{payload}</item></publish></pubsub>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

async fn vcard_of(c: &mut Client, who: &str) -> Element {
    let r = c
        .iq("get", Some(who), &format!("<vCard xmlns='{VCARD}'/>"))
        .await;
    r.get_child("vCard", VCARD).cloned().expect("vCard")
}

/// bob's presence as alice sees it.
async fn bobs_presence(a: &mut Client) -> Element {
    a.expect("bob's presence", |e| {
        e.name() == "presence"
            && e.attr("from").is_some_and(|f| f.starts_with("bob@"))
            && e.attr("type").is_none()
    })
    .await
}

#[tokio::test]
async fn a_pep_avatar_becomes_the_vcard_photo_and_the_presence_hash() {
    let s = TestServer::start().await;
    for u in ["alice", "bob"] {
        s.user(u).await;
    }
    mutual(&s, "alice", "bob").await;
    let mut b = s.login("bob", "phone").await;
    // §2: the feature is on the account.
    let info = b
        .iq(
            "get",
            Some("bob@localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert!(String::from(&info).contains(CONVERSION));
    // §3.1: data, then metadata pointing at it (and at an external copy).
    publish(
        &mut b,
        DATA,
        HASH,
        &format!("<data xmlns='{DATA}'>{B64}</data>"),
    )
    .await;
    publish(
        &mut b,
        METADATA,
        HASH,
        &format!(
            "<metadata xmlns='{METADATA}'>\
             <info url='https://e.example/a.png' bytes='3' id='{HASH}' type='image/png'/>\
             <info bytes='3' id='{HASH}' type='image/png'/></metadata>"
        ),
    )
    .await;
    let mut a = s.login("alice", "desk").await;
    a.available().await;
    let v = vcard_of(&mut a, "bob@localhost").await;
    let photo = v.get_child("PHOTO", VCARD).expect("PHOTO");
    assert_eq!(
        photo
            .get_child("BINVAL", VCARD)
            .map(|b| b.text())
            .as_deref(),
        Some(B64)
    );
    assert_eq!(
        photo.get_child("TYPE", VCARD).map(|t| t.text()).as_deref(),
        Some("image/png")
    );
    // §4: bob's presence carries the hash, though his client sent none.
    b.send("<presence/>").await;
    let p = bobs_presence(&mut a).await;
    assert_eq!(photo_hash(&p).as_deref(), Some(HASH));
    // A client's own "no avatar" is left alone.
    b.send(&format!(
        "<presence><show>away</show><x xmlns='{UPDATE}'><photo/></x></presence>"
    ))
    .await;
    let p = bobs_presence(&mut a).await;
    assert_eq!(photo_hash(&p).as_deref(), Some(""));
    // An empty metadata removes the vCard photo and the hash.
    publish(
        &mut b,
        METADATA,
        "off",
        &format!("<metadata xmlns='{METADATA}'/>"),
    )
    .await;
    let v = vcard_of(&mut a, "bob@localhost").await;
    assert!(!v.has_child("PHOTO", VCARD));
    b.send("<presence><show>chat</show></presence>").await;
    let p = bobs_presence(&mut a).await;
    assert_eq!(photo_hash(&p), None);
}

#[tokio::test]
async fn a_vcard_photo_becomes_the_pep_avatar_and_reaches_rooms() {
    let s = TestServer::start().await;
    for u in ["alice", "bob"] {
        s.user(u).await;
    }
    let mut b = s.login("bob", "phone").await;
    let r = b
        .iq(
            "set",
            None,
            &format!(
                "<vCard xmlns='{VCARD}'><FN>Bob</FN><PHOTO><TYPE>image/png</TYPE>\
                 <BINVAL>{B64}</BINVAL></PHOTO></vCard>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    // §3.2: the data item (id = SHA-1), then the metadata.
    let items = b
        .iq(
            "get",
            Some("bob@localhost"),
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{METADATA}'/></pubsub>"),
        )
        .await;
    let xml = String::from(&items);
    assert!(
        xml.contains(&format!("id='{HASH}'")) || xml.contains(&format!("id=\"{HASH}\"")),
        "{xml}"
    );
    assert!(xml.contains("bytes") && xml.contains("image/png"), "{xml}");
    let data = b
        .iq(
            "get",
            Some("bob@localhost"),
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{DATA}'/></pubsub>"),
        )
        .await;
    assert!(String::from(&data).contains(B64));
    // The hash reaches a room through account-based joining (§4: "MUST
    // also be injected into directed presences such as MUC joins").
    let mut a = s.login("alice", "desk").await;
    let rj = room("faces");
    a.create_room(&rj, "alice").await;
    b.join_room(&rj, "bob").await;
    let seen = a
        .expect("bob in the room", |e| {
            e.name() == "presence" && e.attr("from") == Some(format!("{rj}/bob").as_str())
        })
        .await;
    assert_eq!(
        photo_hash(&seen).as_deref(),
        Some(HASH),
        "{}",
        String::from(&seen)
    );
}

#[tokio::test]
async fn the_presence_hash_survives_a_restart() {
    let s = TestServer::start().await;
    for u in ["alice", "bob"] {
        s.user(u).await;
    }
    mutual(&s, "alice", "bob").await;
    let mut b = s.login("bob", "phone").await;
    let r = b
        .iq(
            "set",
            None,
            &format!("<vCard xmlns='{VCARD}'><PHOTO><BINVAL>{B64}</BINVAL></PHOTO></vCard>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    drop(b);
    let s = s.restart().await;
    let mut a = s.login("alice", "desk").await;
    a.available().await;
    let mut b = s.login("bob", "phone").await;
    b.send("<presence/>").await;
    let p = bobs_presence(&mut a).await;
    assert_eq!(photo_hash(&p).as_deref(), Some(HASH));
}
