//! XEP-0163 PEP over real sockets: publishing with notifications filtered
//! by +notify caps and presence subscription, retrieval per access model,
//! retraction, publish-options preconditions, last published items at
//! login and when a contact comes online, node owner operations, XEP-0084
//! avatars, OMEMO device lists and bundles, and discovery.

use std::time::Duration;

use jid::BareJid;
use minidom::Element;
use roost_store::{RosterItem, Subscription};
use roost_testkit::{Client, TestServer};

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NICK: &str = "http://jabber.org/protocol/nick";
const TUNE: &str = "http://jabber.org/protocol/tune";
const AVATAR_DATA: &str = "urn:xmpp:avatar:data";
const AVATAR_METADATA: &str = "urn:xmpp:avatar:metadata";
const DEVICELIST: &str = "eu.siacs.conversations.axolotl.devicelist";
const AXOLOTL: &str = "eu.siacs.conversations.axolotl";

/// `a` and `b` have a mutual presence subscription (`both`), written to
/// the store before either logs in.
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

fn nick(n: &str) -> String {
    format!("<nick xmlns='{NICK}'>{n}</nick>")
}

fn options(fields: &[(&str, &str)]) -> String {
    if fields.is_empty() {
        return String::new();
    }
    let mut f = String::from("<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>");
    for (var, value) in fields {
        f.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    f.push_str("</x></publish-options>");
    f
}

async fn publish_with(
    c: &mut Client,
    node: &str,
    id: Option<&str>,
    payload: &str,
    opts: &[(&str, &str)],
) -> Element {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    c.iq(
        "set",
        None,
        &format!(
            "<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item{id}>{payload}</item></publish>{}</pubsub>",
            options(opts)
        ),
    )
    .await
}

/// Publish and insist on success.
async fn publish(
    c: &mut Client,
    node: &str,
    id: Option<&str>,
    payload: &str,
    opts: &[(&str, &str)],
) -> Element {
    let r = publish_with(c, node, id, payload, opts).await;
    ok(&r);
    r
}

async fn items(
    c: &mut Client,
    to: Option<&str>,
    node: &str,
    inner: &str,
    max: Option<usize>,
) -> Element {
    let max = max.map(|m| format!(" max_items='{m}'")).unwrap_or_default();
    c.iq(
        "get",
        to,
        &format!("<pubsub xmlns='{PUBSUB}'><items node='{node}'{max}>{inner}</items></pubsub>"),
    )
    .await
}

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(r));
}

/// The defined condition and the pubsub-specific one of an error reply.
fn error_of(r: &Element) -> (String, Option<String>) {
    assert_eq!(r.attr("type"), Some("error"), "{}", String::from(r));
    let e = r
        .get_child("error", "jabber:client")
        .expect("error element");
    let cond = e
        .children()
        .find(|c| c.ns() == STANZAS && c.name() != "text")
        .map(|c| c.name().to_string())
        .unwrap_or_default();
    let app = e
        .children()
        .find(|c| c.ns() == ERRORS)
        .map(|c| c.name().to_string());
    (cond, app)
}

/// Item ids of an items result, in order.
fn item_ids(r: &Element) -> Vec<String> {
    r.get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .map(|i| {
            i.children()
                .filter_map(|c| c.attr("id"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// An event message from `from` about `node`.
fn event(from: &'static str, node: &'static str) -> impl Fn(&Element) -> bool {
    move |e: &Element| {
        e.name() == "message"
            && e.attr("from") == Some(from)
            && e.get_child("event", EVENT)
                .is_some_and(|ev| ev.children().any(|c| c.attr("node") == Some(node)))
    }
}

/// The first `<item/>` (or `<retract/>`) of an event's `<items/>`.
fn event_child<'a>(m: &'a Element, name: &str) -> &'a Element {
    m.get_child("event", EVENT)
        .and_then(|e| e.get_child("items", EVENT))
        .and_then(|i| i.get_child(name, EVENT))
        .unwrap_or_else(|| panic!("no {name} in {}", String::from(m)))
}

#[tokio::test]
async fn publishing_notifies_the_owners_other_resource_and_a_subscribed_contact_with_notify() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    mutual(&s, "alice", "bob").await;
    let mut home = s.login("alice", "home").await;
    let mut phone = s.login("alice", "phone").await;
    let mut bob = s.login("bob", "work").await;
    home.available().await;
    phone.available_with_notify(&[NICK]).await;
    bob.available_with_notify(&[NICK]).await;
    let r = publish(&mut home, NICK, None, &nick("Alice"), &[]).await;
    // XEP-0060 §7.1.2: the result names the generated item id.
    let id = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish", PUBSUB))
        .and_then(|p| p.get_child("item", PUBSUB))
        .and_then(|i| i.attr("id"))
        .expect("generated id")
        .to_string();
    for c in [&mut phone, &mut bob] {
        let m = c.expect("nick event", event("alice@localhost", NICK)).await;
        assert_eq!(m.attr("type"), Some("headline"));
        let item = event_child(&m, "item");
        assert_eq!(item.attr("id"), Some(id.as_str()));
        assert_eq!(
            item.get_child("nick", NICK).map(|n| n.text()).as_deref(),
            Some("Alice")
        );
    }
}

#[tokio::test]
async fn contacts_without_notify_or_without_subscription_get_no_notification() {
    let s = TestServer::start().await;
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
    mutual(&s, "alice", "bob").await;
    let mut alice = s.login("alice", "home").await;
    let mut bob = s.login("bob", "work").await;
    let mut carol = s.login("carol", "x").await;
    alice.available().await;
    // bob wants tunes only; carol wants nicks but is no contact.
    bob.available_with_notify(&[TUNE]).await;
    carol.available_with_notify(&[NICK, TUNE]).await;
    publish(&mut alice, NICK, Some("current"), &nick("Alice"), &[]).await;
    publish(
        &mut alice,
        TUNE,
        Some("current"),
        &format!("<tune xmlns='{TUNE}'/>"),
        &[],
    )
    .await;
    // The tune event comes after the nick one would have: none came.
    bob.expect("tune event", event("alice@localhost", TUNE))
        .await;
    assert!(bob
        .gets_within(Duration::ZERO, event("alice@localhost", NICK))
        .await
        .is_none());
    assert!(carol
        .gets_within(Duration::from_millis(500), |e| e.name() == "message")
        .await
        .is_none());
}

#[tokio::test]
async fn presence_node_items_are_readable_by_subscribers_only() {
    let s = TestServer::start().await;
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
    mutual(&s, "alice", "bob").await;
    let mut alice = s.login("alice", "home").await;
    let mut bob = s.login("bob", "work").await;
    let mut carol = s.login("carol", "x").await;
    publish(&mut alice, NICK, Some("current"), &nick("Alice"), &[]).await;
    let own = items(&mut alice, None, NICK, "", None).await;
    assert_eq!(item_ids(&own), ["current"]);
    let r = items(&mut bob, Some("alice@localhost"), NICK, "", None).await;
    ok(&r);
    assert_eq!(item_ids(&r), ["current"]);
    let r = items(&mut carol, Some("alice@localhost"), NICK, "", None).await;
    assert_eq!(
        error_of(&r),
        (
            "not-authorized".into(),
            Some("presence-subscription-required".into())
        )
    );
}

#[tokio::test]
async fn open_node_items_are_readable_by_strangers() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("carol").await;
    let mut alice = s.login("alice", "home").await;
    let mut carol = s.login("carol", "x").await;
    publish(
        &mut alice,
        NICK,
        Some("current"),
        &nick("Alice"),
        &[("pubsub#access_model", "open")],
    )
    .await;
    let r = items(&mut carol, Some("alice@localhost"), NICK, "", None).await;
    ok(&r);
    assert_eq!(item_ids(&r), ["current"]);
}

#[tokio::test]
async fn whitelist_node_items_are_readable_by_the_owner_only() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    mutual(&s, "alice", "bob").await;
    let mut alice = s.login("alice", "home").await;
    let mut bob = s.login("bob", "work").await;
    let node = "urn:example:secret";
    publish(
        &mut alice,
        node,
        Some("x"),
        "<s xmlns='urn:example:secret'/>",
        &[("pubsub#access_model", "whitelist")],
    )
    .await;
    assert_eq!(
        item_ids(&items(&mut alice, None, node, "", None).await),
        ["x"]
    );
    let r = items(&mut bob, Some("alice@localhost"), node, "", None).await;
    assert_eq!(
        error_of(&r),
        ("not-allowed".into(), Some("closed-node".into()))
    );
}

#[tokio::test]
async fn items_of_a_missing_node_are_item_not_found() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "home").await;
    let r = items(&mut alice, None, "urn:example:none", "", None).await;
    assert_eq!(error_of(&r).0, "item-not-found");
}

#[tokio::test]
async fn items_get_returns_the_most_recent_or_the_named_items_in_publication_order() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "home").await;
    let node = "urn:example:log";
    for i in 1..=4 {
        publish(
            &mut alice,
            node,
            Some(&format!("i{i}")),
            &format!("<e xmlns='urn:example:log'>{i}</e>"),
            &[("pubsub#max_items", "10")],
        )
        .await;
    }
    assert_eq!(
        item_ids(&items(&mut alice, None, node, "", None).await),
        ["i1", "i2", "i3", "i4"]
    );
    assert_eq!(
        item_ids(&items(&mut alice, None, node, "", Some(2)).await),
        ["i3", "i4"]
    );
    let named = items(
        &mut alice,
        None,
        node,
        "<item id='i2'/><item id='nope'/><item id='i1'/>",
        None,
    )
    .await;
    assert_eq!(item_ids(&named), ["i1", "i2"]);
    // Republishing an id makes it the newest.
    publish(
        &mut alice,
        node,
        Some("i1"),
        "<e xmlns='urn:example:log'>again</e>",
        &[],
    )
    .await;
    assert_eq!(
        item_ids(&items(&mut alice, None, node, "", Some(1)).await),
        ["i1"]
    );
}

#[tokio::test]
async fn publishing_past_max_items_drops_the_oldest() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "home").await;
    let node = "urn:example:ring";
    for i in 1..=3 {
        publish(
            &mut alice,
            node,
            Some(&format!("i{i}")),
            "<e xmlns='urn:example:ring'/>",
            &[("pubsub#max_items", "2")],
        )
        .await;
    }
    assert_eq!(
        item_ids(&items(&mut alice, None, node, "", None).await),
        ["i2", "i3"]
    );
}

#[tokio::test]
async fn retracting_an_item_notifies_a_retract_and_removes_it() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut home = s.login("alice", "home").await;
    let mut phone = s.login("alice", "phone").await;
    phone.available_with_notify(&[TUNE]).await;
    publish(
        &mut home,
        TUNE,
        Some("t1"),
        &format!("<tune xmlns='{TUNE}'/>"),
        &[],
    )
    .await;
    phone
        .expect("publish event", event("alice@localhost", TUNE))
        .await;
    let r = home
        .iq("set", None, &format!("<pubsub xmlns='{PUBSUB}'><retract node='{TUNE}' notify='true'><item id='t1'/></retract></pubsub>"))
        .await;
    ok(&r);
    let m = phone
        .expect("retract event", |e| {
            // The item may come twice first: as the publish notification
            // and as the last item once the phone's caps are known.
            event("alice@localhost", TUNE)(e)
                && e.get_child("event", EVENT)
                    .and_then(|ev| ev.get_child("items", EVENT))
                    .is_some_and(|i| i.has_child("retract", EVENT))
        })
        .await;
    assert_eq!(event_child(&m, "retract").attr("id"), Some("t1"));
    assert!(item_ids(&items(&mut home, None, TUNE, "", None).await).is_empty());
    // Again: the item is gone.
    let r = home
        .iq("set", None, &format!("<pubsub xmlns='{PUBSUB}'><retract node='{TUNE}'><item id='t1'/></retract></pubsub>"))
        .await;
    assert_eq!(error_of(&r).0, "item-not-found");
}

#[tokio::test]
async fn publish_options_that_differ_from_the_node_configuration_are_a_precondition_conflict() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "home").await;
    publish(
        &mut alice,
        NICK,
        Some("current"),
        &nick("A"),
        &[("pubsub#access_model", "presence")],
    )
    .await;
    let r = publish_with(
        &mut alice,
        NICK,
        Some("current"),
        &nick("B"),
        &[("pubsub#access_model", "open")],
    )
    .await;
    assert_eq!(
        error_of(&r),
        ("conflict".into(), Some("precondition-not-met".into()))
    );
    // Unknown fields are not met either (XEP-0060 §7.1.5).
    let r = publish_with(
        &mut alice,
        NICK,
        Some("current"),
        &nick("B"),
        &[("pubsub#frobnicate", "1")],
    )
    .await;
    assert_eq!(
        error_of(&r),
        ("conflict".into(), Some("precondition-not-met".into()))
    );
    // Matching preconditions publish.
    publish(
        &mut alice,
        NICK,
        Some("current"),
        &nick("C"),
        &[
            ("pubsub#access_model", "presence"),
            ("pubsub#persist_items", "true"),
        ],
    )
    .await;
    let r = items(&mut alice, None, NICK, "", None).await;
    assert!(String::from(&r).contains(">C<"), "{}", String::from(&r));
}

#[tokio::test]
async fn the_last_item_reaches_a_resource_logging_in_later() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut home = s.login("alice", "home").await;
    publish(&mut home, NICK, Some("current"), &nick("Alice"), &[]).await;
    let mut phone = s.login("alice", "phone").await;
    phone.available_with_notify(&[NICK]).await;
    let m = phone
        .expect("last nick", event("alice@localhost", NICK))
        .await;
    assert_eq!(event_child(&m, "item").attr("id"), Some("current"));
    assert!(
        m.has_child("delay", "urn:xmpp:delay"),
        "{}",
        String::from(&m)
    );
}

#[tokio::test]
async fn the_last_item_reaches_a_contact_coming_online() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    mutual(&s, "alice", "bob").await;
    let mut alice = s.login("alice", "home").await;
    alice.available().await;
    publish(&mut alice, NICK, Some("current"), &nick("Alice"), &[]).await;
    let mut bob = s.login("bob", "work").await;
    bob.available_with_notify(&[NICK]).await;
    let m = bob
        .expect("alice's last nick", event("alice@localhost", NICK))
        .await;
    let item = event_child(&m, "item");
    assert_eq!(
        item.get_child("nick", NICK).map(|n| n.text()).as_deref(),
        Some("Alice")
    );
}

#[tokio::test]
async fn only_the_owner_may_publish_retract_configure_or_delete() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    mutual(&s, "alice", "bob").await;
    let mut alice = s.login("alice", "home").await;
    let mut bob = s.login("bob", "work").await;
    publish(&mut alice, NICK, Some("current"), &nick("Alice"), &[]).await;
    let to = Some("alice@localhost");
    let requests = [
        format!("<pubsub xmlns='{PUBSUB}'><publish node='{NICK}'><item id='current'>{}</item></publish></pubsub>", nick("Mallory")),
        format!("<pubsub xmlns='{PUBSUB}'><retract node='{NICK}'><item id='current'/></retract></pubsub>"),
        format!("<pubsub xmlns='{PUBSUB}'><create node='urn:example:new'/></pubsub>"),
        format!("<pubsub xmlns='{OWNER}'><delete node='{NICK}'/></pubsub>"),
        format!("<pubsub xmlns='{OWNER}'><purge node='{NICK}'/></pubsub>"),
    ];
    for req in requests {
        let r = bob.iq("set", to, &req).await;
        assert_eq!(error_of(&r).0, "forbidden", "{req}");
    }
    let r = bob
        .iq(
            "get",
            to,
            &format!("<pubsub xmlns='{OWNER}'><configure node='{NICK}'/></pubsub>"),
        )
        .await;
    assert_eq!(error_of(&r).0, "forbidden");
    let r = items(&mut alice, None, NICK, "", None).await;
    assert!(String::from(&r).contains(">Alice<"));
}

#[tokio::test]
async fn a_node_is_created_configured_and_deleted_with_a_delete_notification() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut home = s.login("alice", "home").await;
    let mut phone = s.login("alice", "phone").await;
    let node = "urn:example:journal";
    phone.available_with_notify(&[node]).await;
    let create = format!(
        "<pubsub xmlns='{PUBSUB}'><create node='{node}'/><configure><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>\
         <field var='pubsub#access_model'><value>open</value></field>\
         <field var='pubsub#max_items'><value>5</value></field></x></configure></pubsub>"
    );
    ok(&home.iq("set", None, &create).await);
    // A second create is a conflict (XEP-0060 §8.1.1).
    assert_eq!(error_of(&home.iq("set", None, &create).await).0, "conflict");
    let get = format!("<pubsub xmlns='{OWNER}'><configure node='{node}'/></pubsub>");
    let form = String::from(&home.iq("get", None, &get).await);
    assert!(form.contains("<value>open</value>"), "{form}");
    assert!(form.contains("<value>5</value>"), "{form}");
    let set = format!(
        "<pubsub xmlns='{OWNER}'><configure node='{node}'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>\
         <field var='pubsub#max_items'><value>max</value></field></x></configure></pubsub>"
    );
    ok(&home.iq("set", None, &set).await);
    let form = String::from(&home.iq("get", None, &get).await);
    assert!(form.contains("<value>max</value>"), "{form}");
    let bad = set.replace("<value>max</value>", "<value>many</value>");
    assert_eq!(
        error_of(&home.iq("set", None, &bad).await).0,
        "not-acceptable"
    );
    ok(&home
        .iq(
            "set",
            None,
            &format!("<pubsub xmlns='{OWNER}'><delete node='{node}'/></pubsub>"),
        )
        .await);
    let m = phone
        .expect("delete event", |e| {
            e.name() == "message"
                && e.get_child("event", EVENT)
                    .is_some_and(|ev| ev.has_child("delete", EVENT))
        })
        .await;
    assert!(m
        .get_child("event", EVENT)
        .unwrap()
        .has_child("delete", EVENT));
    assert_eq!(
        error_of(&items(&mut home, None, node, "", None).await).0,
        "item-not-found"
    );
}

#[tokio::test]
async fn avatar_data_and_metadata_round_trip() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    mutual(&s, "alice", "bob").await;
    let mut alice = s.login("alice", "home").await;
    let mut bob = s.login("bob", "work").await;
    bob.available_with_notify(&[AVATAR_METADATA]).await;
    // XEP-0084 §4.1: data first (larger than ordinary payloads may be),
    // item id = SHA-1 of the image; then metadata.
    let png = "iVBORw0KGgo".repeat(8000);
    let hash = "111f4b3c50d7b0df729d299bc6f8e9ef9066971f";
    publish(
        &mut alice,
        AVATAR_DATA,
        Some(hash),
        &format!("<data xmlns='{AVATAR_DATA}'>{png}</data>"),
        &[],
    )
    .await;
    let meta = format!("<metadata xmlns='{AVATAR_METADATA}'><info bytes='88000' id='{hash}' height='64' width='64' type='image/png'/></metadata>");
    publish(&mut alice, AVATAR_METADATA, Some(hash), &meta, &[]).await;
    let m = bob
        .expect("metadata event", event("alice@localhost", AVATAR_METADATA))
        .await;
    let info = event_child(&m, "item")
        .get_child("metadata", AVATAR_METADATA)
        .and_then(|md| md.get_child("info", AVATAR_METADATA))
        .expect("info");
    assert_eq!(info.attr("id"), Some(hash));
    let r = items(
        &mut bob,
        Some("alice@localhost"),
        AVATAR_DATA,
        &format!("<item id='{hash}'/>"),
        None,
    )
    .await;
    ok(&r);
    let data = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .and_then(|i| i.get_child("item", PUBSUB))
        .and_then(|i| i.get_child("data", AVATAR_DATA))
        .expect("data");
    assert_eq!(data.text(), png);
}

#[tokio::test]
async fn oversized_payloads_are_payload_too_big() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "home").await;
    let big = "x".repeat(70 * 1024);
    let r = publish_with(
        &mut alice,
        NICK,
        None,
        &format!("<nick xmlns='{NICK}'>{big}</nick>"),
        &[],
    )
    .await;
    assert_eq!(
        error_of(&r),
        ("not-acceptable".into(), Some("payload-too-big".into()))
    );
}

#[tokio::test]
async fn omemo_device_list_and_bundle_with_open_access_are_readable_by_a_stranger() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("mallory").await;
    let mut alice = s.login("alice", "home").await;
    let mut stranger = s.login("mallory", "x").await;
    let open = [("pubsub#access_model", "open")];
    publish(
        &mut alice,
        DEVICELIST,
        Some("current"),
        &format!("<list xmlns='{AXOLOTL}'><device id='1234'/></list>"),
        &open,
    )
    .await;
    let bundle_node = format!("{AXOLOTL}.bundles:1234");
    let bundle = format!(
        "<bundle xmlns='{AXOLOTL}'><signedPreKeyPublic signedPreKeyId='1'>BASE64</signedPreKeyPublic>\
         <signedPreKeySignature>SIG</signedPreKeySignature><identityKey>KEY</identityKey>\
         <prekeys><preKeyPublic preKeyId='1'>PK1</preKeyPublic><preKeyPublic preKeyId='2'>PK2</preKeyPublic></prekeys></bundle>"
    );
    publish(&mut alice, &bundle_node, Some("current"), &bundle, &open).await;
    let r = items(&mut stranger, Some("alice@localhost"), DEVICELIST, "", None).await;
    ok(&r);
    assert!(
        String::from(&r).contains("device id=\"1234\"")
            || String::from(&r).contains("device id='1234'"),
        "{}",
        String::from(&r)
    );
    let r = items(
        &mut stranger,
        Some("alice@localhost"),
        &bundle_node,
        "",
        None,
    )
    .await;
    ok(&r);
    assert_eq!(item_ids(&r), ["current"]);
    assert!(String::from(&r).contains("PK2"));
    // The stranger sees the nodes in disco#items too (XEP-0163 §6.2).
    let d = stranger
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{DISCO_ITEMS}'/>"),
        )
        .await;
    let nodes: Vec<&str> = d
        .get_child("query", DISCO_ITEMS)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("node"))
        .collect();
    assert!(
        nodes.contains(&DEVICELIST) && nodes.contains(&bundle_node.as_str()),
        "{nodes:?}"
    );
}

#[tokio::test]
async fn account_disco_info_shows_the_pep_identity_and_pubsub_features() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "home").await;
    let r = alice
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{DISCO_INFO}'/>"),
        )
        .await;
    let q = r.get_child("query", DISCO_INFO).expect("query");
    assert!(q.children().any(|i| i.name() == "identity"
        && i.attr("category") == Some("pubsub")
        && i.attr("type") == Some("pep")));
    let features: Vec<&str> = q.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        "http://jabber.org/protocol/pubsub#publish",
        "http://jabber.org/protocol/pubsub#publish-options",
        "http://jabber.org/protocol/pubsub#auto-create",
        "http://jabber.org/protocol/pubsub#retrieve-items",
        "http://jabber.org/protocol/pubsub#delete-items",
        "jabber:iq:private",
        "urn:xmpp:bookmarks:1#compat",
    ] {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
}

#[tokio::test]
async fn account_disco_items_list_only_the_nodes_the_requester_may_read() {
    let s = TestServer::start().await;
    for u in ["alice", "bob", "carol"] {
        s.user(u).await;
    }
    mutual(&s, "alice", "bob").await;
    let mut alice = s.login("alice", "home").await;
    let mut bob = s.login("bob", "work").await;
    let mut carol = s.login("carol", "x").await;
    publish(&mut alice, NICK, Some("current"), &nick("Alice"), &[]).await;
    publish(
        &mut alice,
        DEVICELIST,
        Some("current"),
        &format!("<list xmlns='{AXOLOTL}'/>"),
        &[("pubsub#access_model", "open")],
    )
    .await;
    publish(
        &mut alice,
        "urn:example:secret",
        Some("x"),
        "<s xmlns='urn:example:secret'/>",
        &[("pubsub#access_model", "whitelist")],
    )
    .await;
    let mut seen = Vec::new();
    for c in [&mut alice, &mut bob, &mut carol] {
        let r = c
            .iq(
                "get",
                Some("alice@localhost"),
                &format!("<query xmlns='{DISCO_ITEMS}'/>"),
            )
            .await;
        let mut nodes: Vec<String> = r
            .get_child("query", DISCO_ITEMS)
            .unwrap()
            .children()
            .filter_map(|i| i.attr("node"))
            .map(str::to_string)
            .collect();
        nodes.sort();
        seen.push(nodes);
    }
    assert_eq!(seen[0], [DEVICELIST, NICK, "urn:example:secret"]);
    assert_eq!(seen[1], [DEVICELIST, NICK]);
    assert_eq!(seen[2], [DEVICELIST]);
    // A node's own disco#info is its identity, for those who may read it.
    let r = carol
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{DISCO_INFO}' node='{NICK}'/>"),
        )
        .await;
    assert_eq!(error_of(&r).0, "not-authorized");
    let r = bob
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{DISCO_INFO}' node='{NICK}'/>"),
        )
        .await;
    ok(&r);
    assert!(String::from(&r).contains("leaf"));
}
