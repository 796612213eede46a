//! XEP-0060 publish-subscribe service on `pubsub.<domain>` over real
//! sockets: node life cycle (create, instant, configure, delete, purge),
//! subscriptions and notifications with and without payloads, item
//! retrieval, every access model including the authorize approval flow,
//! publish-options, affiliations and subscriptions management, errors,
//! discovery, and persistence across a restart.

use std::time::Duration;

use jid::BareJid;
use minidom::Element;
use roost_store::{RosterItem, Subscription};
use roost_testkit::{Client, TestServer};

const SERVICE: &str = "pubsub.localhost";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const DATA: &str = "jabber:x:data";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const ENTRY: &str = "http://www.w3.org/2005/Atom";
const QUIET: Duration = Duration::from_millis(300);

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

fn fields(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(var, value)| format!("<field var='{var}'><value>{value}</value></field>"))
        .collect()
}

fn form(form_type: &str, f: &[(&str, &str)]) -> String {
    format!(
        "<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#{form_type}</value></field>{}</x>",
        fields(f)
    )
}

fn entry(text: &str) -> String {
    format!("<entry xmlns='{ENTRY}'><title>{text}</title></entry>")
}

async fn create_with(c: &mut Client, node: &str, config: &[(&str, &str)]) -> Element {
    let configure = if config.is_empty() {
        String::new()
    } else {
        format!("<configure>{}</configure>", form("node_config", config))
    };
    c.iq(
        "set",
        Some(SERVICE),
        &format!("<pubsub xmlns='{PUBSUB}'><create node='{node}'/>{configure}</pubsub>"),
    )
    .await
}

async fn create(c: &mut Client, node: &str, config: &[(&str, &str)]) {
    ok(&create_with(c, node, config).await);
}

async fn publish_with(c: &mut Client, node: &str, id: Option<&str>, payload: &str) -> Element {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    c.iq(
        "set",
        Some(SERVICE),
        &format!("<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item{id}>{payload}</item></publish></pubsub>"),
    )
    .await
}

/// Publish and return the item id the service answered with.
async fn publish(c: &mut Client, node: &str, id: Option<&str>, payload: &str) -> String {
    let r = publish_with(c, node, id, payload).await;
    ok(&r);
    r.get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish", PUBSUB))
        .and_then(|p| p.get_child("item", PUBSUB))
        .and_then(|i| i.attr("id"))
        .expect("item id in the result")
        .to_string()
}

async fn subscribe_with(c: &mut Client, node: &str) -> Element {
    let jid = c.bare();
    c.iq(
        "set",
        Some(SERVICE),
        &format!("<pubsub xmlns='{PUBSUB}'><subscribe node='{node}' jid='{jid}'/></pubsub>"),
    )
    .await
}

/// Subscribe and return the subscription state.
async fn subscribe(c: &mut Client, node: &str) -> String {
    let r = subscribe_with(c, node).await;
    ok(&r);
    r.get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("subscription", PUBSUB))
        .and_then(|s| s.attr("subscription"))
        .expect("subscription state")
        .to_string()
}

async fn items(c: &mut Client, node: &str, inner: &str, max: Option<usize>) -> Element {
    let max = max.map(|m| format!(" max_items='{m}'")).unwrap_or_default();
    c.iq(
        "get",
        Some(SERVICE),
        &format!("<pubsub xmlns='{PUBSUB}'><items node='{node}'{max}>{inner}</items></pubsub>"),
    )
    .await
}

fn item_ids(r: &Element) -> Vec<String> {
    ok(r);
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

async fn owner_iq(c: &mut Client, kind: &str, inner: &str) -> Element {
    c.iq(
        kind,
        Some(SERVICE),
        &format!("<pubsub xmlns='{OWNER}'>{inner}</pubsub>"),
    )
    .await
}

fn event_of(m: &Element) -> Option<&Element> {
    if m.name() != "message" || m.attr("from") != Some(SERVICE) {
        return None;
    }
    m.get_child("event", EVENT)
}

/// The next event message whose child is named `name`.
async fn event(c: &mut Client, name: &str) -> Element {
    let m = c
        .expect(&format!("pubsub event <{name}/>"), |m| {
            event_of(m).is_some_and(|e| e.children().any(|c| c.name() == name))
        })
        .await;
    event_of(&m)
        .and_then(|e| e.children().find(|c| c.name() == name))
        .cloned()
        .expect("event child")
}

async fn no_event(c: &mut Client) {
    assert!(
        c.gets_within(QUIET, |m| event_of(m).is_some())
            .await
            .is_none(),
        "no notification expected"
    );
}

/// `a` has `b` in its roster with `subscription` and `groups`.
async fn roster_item(
    s: &TestServer,
    a: &str,
    b: &str,
    subscription: Subscription,
    groups: &[&str],
) {
    let owner = BareJid::new(&format!("{a}@localhost")).unwrap();
    let item = RosterItem {
        subscription,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..RosterItem::new(BareJid::new(&format!("{b}@localhost")).unwrap())
    };
    s.running
        .server
        .stores
        .roster
        .put_roster_item(&owner, &item)
        .await
        .unwrap();
}

/// Log in and send initial presence: notifications to a bare JID go to
/// available resources (RFC 6121 §8.5.2).
async fn online(s: &TestServer, name: &str, resource: &str) -> Client {
    let mut c = s.login(name, resource).await;
    c.available().await;
    c
}

async fn two_users(s: &TestServer) -> (Client, Client) {
    s.user("alice").await;
    s.user("bob").await;
    (
        online(s, "alice", "pc").await,
        online(s, "bob", "phone").await,
    )
}

#[tokio::test]
async fn the_service_is_listed_by_the_server_and_describes_itself() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "pc").await;
    let items = alice
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{DISCO_ITEMS}'/>"),
        )
        .await;
    let query = items.get_child("query", DISCO_ITEMS).unwrap();
    assert!(
        query.children().any(|i| i.attr("jid") == Some(SERVICE)),
        "{}",
        String::from(&items)
    );
    let info = alice
        .iq(
            "get",
            Some(SERVICE),
            &format!("<query xmlns='{DISCO_INFO}'/>"),
        )
        .await;
    let query = info.get_child("query", DISCO_INFO).unwrap();
    let identity = query.get_child("identity", DISCO_INFO).unwrap();
    assert_eq!(identity.attr("category"), Some("pubsub"));
    assert_eq!(identity.attr("type"), Some("service"));
    let features: Vec<&str> = query.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        "http://jabber.org/protocol/pubsub",
        "http://jabber.org/protocol/pubsub#create-nodes",
        "http://jabber.org/protocol/pubsub#publish",
        "http://jabber.org/protocol/pubsub#subscribe",
        "http://jabber.org/protocol/pubsub#access-authorize",
        "http://jabber.org/protocol/pubsub#publish-options",
        "http://jabber.org/protocol/pubsub#modify-affiliations",
    ] {
        assert!(features.contains(&f), "{f} missing: {features:?}");
    }
}

#[tokio::test]
async fn nodes_appear_in_disco_with_their_meta_data_and_items() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "pc").await;
    create(&mut alice, "news", &[("pubsub#title", "Daily news")]).await;
    publish(&mut alice, "news", Some("first"), &entry("hello")).await;
    let list = alice
        .iq(
            "get",
            Some(SERVICE),
            &format!("<query xmlns='{DISCO_ITEMS}'/>"),
        )
        .await;
    let item = list
        .get_child("query", DISCO_ITEMS)
        .and_then(|q| q.get_child("item", DISCO_ITEMS))
        .expect("the node");
    assert_eq!(item.attr("node"), Some("news"));
    assert_eq!(item.attr("name"), Some("Daily news"));
    let info = alice
        .iq(
            "get",
            Some(SERVICE),
            &format!("<query xmlns='{DISCO_INFO}' node='news'/>"),
        )
        .await;
    let q = info.get_child("query", DISCO_INFO).unwrap();
    assert_eq!(
        q.get_child("identity", DISCO_INFO).unwrap().attr("type"),
        Some("leaf")
    );
    let meta = String::from(q.get_child("x", DATA).expect("meta-data form"));
    assert!(meta.contains("pubsub#meta-data"), "{meta}");
    assert!(meta.contains("alice@localhost"), "{meta}");
    let node_items = alice
        .iq(
            "get",
            Some(SERVICE),
            &format!("<query xmlns='{DISCO_ITEMS}' node='news'/>"),
        )
        .await;
    let names: Vec<&str> = node_items
        .get_child("query", DISCO_ITEMS)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("name"))
        .collect();
    assert_eq!(names, ["first"]);
}

#[tokio::test]
async fn a_subscriber_is_notified_with_the_payload() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "news", &[]).await;
    assert_eq!(subscribe(&mut bob, "news").await, "subscribed");
    let id = publish(&mut alice, "news", None, &entry("hello")).await;
    assert!(!id.is_empty(), "the service generates an item id");
    let items = event(&mut bob, "items").await;
    assert_eq!(items.attr("node"), Some("news"));
    let item = items.get_child("item", EVENT).unwrap();
    assert_eq!(item.attr("id"), Some(id.as_str()));
    assert!(item.get_child("entry", ENTRY).is_some());
}

#[tokio::test]
async fn notification_only_nodes_send_item_ids_without_payloads() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "quiet", &[("pubsub#deliver_payloads", "false")]).await;
    subscribe(&mut bob, "quiet").await;
    publish(&mut alice, "quiet", Some("i1"), &entry("x")).await;
    let items = event(&mut bob, "items").await;
    let item = items.get_child("item", EVENT).unwrap();
    assert_eq!(item.attr("id"), Some("i1"));
    assert_eq!(item.children().count(), 0, "{}", String::from(&items));
}

#[tokio::test]
async fn items_come_back_all_the_newest_or_by_id_and_old_ones_are_trimmed() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "log", &[("pubsub#max_items", "3")]).await;
    for i in 1..=4 {
        publish(
            &mut alice,
            "log",
            Some(&format!("e{i}")),
            &entry(&i.to_string()),
        )
        .await;
    }
    // Publication order; e1 was trimmed by max_items.
    assert_eq!(
        item_ids(&items(&mut bob, "log", "", None).await),
        ["e2", "e3", "e4"]
    );
    assert_eq!(
        item_ids(&items(&mut bob, "log", "", Some(2)).await),
        ["e3", "e4"]
    );
    let by_id = items(&mut bob, "log", "<item id='e2'/><item id='e1'/>", None).await;
    assert_eq!(item_ids(&by_id), ["e2"]);
    let payload = by_id
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .and_then(|i| i.get_child("item", PUBSUB))
        .and_then(|i| i.get_child("entry", ENTRY));
    assert!(payload.is_some());
    // Republishing an id replaces the item and makes it the newest.
    publish(&mut alice, "log", Some("e2"), &entry("again")).await;
    assert_eq!(
        item_ids(&items(&mut bob, "log", "", None).await),
        ["e3", "e4", "e2"]
    );
}

#[tokio::test]
async fn an_instant_node_is_named_by_the_service() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "pc").await;
    let r = alice
        .iq(
            "set",
            Some(SERVICE),
            &format!("<pubsub xmlns='{PUBSUB}'><create/></pubsub>"),
        )
        .await;
    ok(&r);
    let name = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("create", PUBSUB))
        .and_then(|c| c.attr("node"))
        .expect("generated NodeID")
        .to_string();
    publish(&mut alice, &name, None, &entry("x")).await;
    // The same name again conflicts.
    let again = create_with(&mut alice, &name, &[]).await;
    assert_eq!(error_of(&again).0, "conflict");
}

#[tokio::test]
async fn the_owner_reads_and_changes_the_configuration_and_subscribers_hear_of_it() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "cfg", &[("pubsub#notify_config", "true")]).await;
    subscribe(&mut bob, "cfg").await;
    let r = owner_iq(&mut alice, "get", "<configure node='cfg'/>").await;
    ok(&r);
    let shown = String::from(&r);
    for var in [
        "pubsub#access_model",
        "pubsub#publish_model",
        "pubsub#max_items",
        "pubsub#send_last_published_item",
        "pubsub#roster_groups_allowed",
        "pubsub#notification_type",
        "pubsub#max_payload_size",
        "pubsub#itemreply",
    ] {
        assert!(shown.contains(var), "{var} missing: {shown}");
    }
    let set = owner_iq(
        &mut alice,
        "set",
        &format!(
            "<configure node='cfg'>{}</configure>",
            form("node_config", &[("pubsub#title", "Configured")])
        ),
    )
    .await;
    ok(&set);
    let change = event(&mut bob, "configuration").await;
    assert_eq!(change.attr("node"), Some("cfg"));
    assert!(String::from(&change).contains("Configured"));
    // A bad value changes nothing and is not-acceptable.
    let bad = owner_iq(
        &mut alice,
        "set",
        &format!(
            "<configure node='cfg'>{}</configure>",
            form("node_config", &[("pubsub#access_model", "secret")])
        ),
    )
    .await;
    assert_eq!(error_of(&bad).0, "not-acceptable");
    // Only owners configure.
    let forbidden = owner_iq(&mut bob, "get", "<configure node='cfg'/>").await;
    assert_eq!(error_of(&forbidden).0, "forbidden");
    let defaults = owner_iq(&mut bob, "get", "<default/>").await;
    ok(&defaults);
}

#[tokio::test]
async fn deleting_a_node_notifies_subscribers_with_the_redirect() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "old", &[("pubsub#notify_delete", "true")]).await;
    subscribe(&mut bob, "old").await;
    let forbidden = owner_iq(&mut bob, "set", "<delete node='old'/>").await;
    assert_eq!(error_of(&forbidden).0, "forbidden");
    ok(&owner_iq(
        &mut alice,
        "set",
        "<delete node='old'><redirect uri='xmpp:pubsub.localhost?;node=new'/></delete>",
    )
    .await);
    let deleted = event(&mut bob, "delete").await;
    assert_eq!(deleted.attr("node"), Some("old"));
    assert!(deleted.get_child("redirect", EVENT).is_some());
    assert_eq!(
        error_of(&items(&mut bob, "old", "", None).await).0,
        "item-not-found"
    );
}

#[tokio::test]
async fn purging_removes_every_item_and_sends_one_purge_event() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "p", &[("pubsub#notify_retract", "true")]).await;
    subscribe(&mut bob, "p").await;
    publish(&mut alice, "p", Some("a"), &entry("a")).await;
    publish(&mut alice, "p", Some("b"), &entry("b")).await;
    ok(&owner_iq(&mut alice, "set", "<purge node='p'/>").await);
    let purge = event(&mut bob, "purge").await;
    assert_eq!(purge.attr("node"), Some("p"));
    assert!(item_ids(&items(&mut bob, "p", "", None).await).is_empty());
}

#[tokio::test]
async fn retraction_is_notified_when_asked() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "r", &[]).await;
    subscribe(&mut bob, "r").await;
    publish(&mut alice, "r", Some("gone"), &entry("x")).await;
    event(&mut bob, "items").await;
    let r = alice
        .iq(
            "set",
            Some(SERVICE),
            &format!("<pubsub xmlns='{PUBSUB}'><retract node='r' notify='true'><item id='gone'/></retract></pubsub>"),
        )
        .await;
    ok(&r);
    let items_event = event(&mut bob, "items").await;
    assert_eq!(
        items_event
            .get_child("retract", EVENT)
            .and_then(|r| r.attr("id")),
        Some("gone")
    );
    // Bob is no publisher: he may not retract.
    publish(&mut alice, "r", Some("kept"), &entry("y")).await;
    let r = bob
        .iq(
            "set",
            Some(SERVICE),
            &format!(
                "<pubsub xmlns='{PUBSUB}'><retract node='r'><item id='kept'/></retract></pubsub>"
            ),
        )
        .await;
    assert_eq!(error_of(&r).0, "forbidden");
}

#[tokio::test]
async fn an_unknown_node_is_item_not_found_everywhere() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "pc").await;
    assert_eq!(
        error_of(&items(&mut alice, "nope", "", None).await).0,
        "item-not-found"
    );
    assert_eq!(
        error_of(&subscribe_with(&mut alice, "nope").await).0,
        "item-not-found"
    );
    assert_eq!(
        error_of(&owner_iq(&mut alice, "get", "<configure node='nope'/>").await).0,
        "item-not-found"
    );
    let r = owner_iq(&mut alice, "get", "<configure/>").await;
    assert_eq!(
        error_of(&r),
        ("bad-request".into(), Some("nodeid-required".into()))
    );
}

#[tokio::test]
async fn publishing_without_being_a_publisher_is_forbidden() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "mine", &[]).await;
    assert_eq!(
        error_of(&publish_with(&mut bob, "mine", None, &entry("x")).await).0,
        "forbidden"
    );
    // With publish_model = open anyone may.
    create(&mut alice, "wall", &[("pubsub#publish_model", "open")]).await;
    publish(&mut bob, "wall", None, &entry("graffiti")).await;
}

#[tokio::test]
async fn only_configured_creators_create_nodes() {
    let s = TestServer::start_with(|c| {
        c.admins = vec!["alice@localhost".into()];
        c.pubsub.creators = roost_pubsub::Creators::Admins;
    })
    .await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "admin-node", &[]).await;
    assert_eq!(
        error_of(&create_with(&mut bob, "bob-node", &[]).await).0,
        "forbidden"
    );
    // Nor does publishing auto-create a node for him.
    assert_eq!(
        error_of(&publish_with(&mut bob, "bob-node", None, &entry("x")).await).0,
        "item-not-found"
    );
}

#[tokio::test]
async fn payload_rules_give_the_pubsub_conditions() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "pc").await;
    create(&mut alice, "small", &[("pubsub#max_payload_size", "100")]).await;
    let big = entry(&"x".repeat(200));
    assert_eq!(
        error_of(&publish_with(&mut alice, "small", None, &big).await),
        ("not-acceptable".into(), Some("payload-too-big".into()))
    );
    let two = format!("{}{}", entry("a"), entry("b"));
    assert_eq!(
        error_of(&publish_with(&mut alice, "small", None, &two).await),
        ("bad-request".into(), Some("invalid-payload".into()))
    );
    create(
        &mut alice,
        "transient",
        &[
            ("pubsub#persist_items", "false"),
            ("pubsub#deliver_payloads", "false"),
        ],
    )
    .await;
    assert_eq!(
        error_of(&publish_with(&mut alice, "transient", None, &entry("x")).await),
        ("bad-request".into(), Some("item-forbidden".into()))
    );
    let no_node = alice
        .iq(
            "set",
            Some(SERVICE),
            &format!("<pubsub xmlns='{PUBSUB}'><publish/></pubsub>"),
        )
        .await;
    assert_eq!(
        error_of(&no_node),
        ("bad-request".into(), Some("nodeid-required".into()))
    );
}

#[tokio::test]
async fn presence_access_needs_a_presence_subscription_to_an_owner() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "status", &[("pubsub#access_model", "presence")]).await;
    assert_eq!(
        error_of(&subscribe_with(&mut bob, "status").await),
        (
            "not-authorized".into(),
            Some("presence-subscription-required".into())
        )
    );
    assert_eq!(
        error_of(&items(&mut bob, "status", "", None).await)
            .1
            .as_deref(),
        Some("presence-subscription-required")
    );
    roster_item(&s, "alice", "bob", Subscription::From, &[]).await;
    assert_eq!(subscribe(&mut bob, "status").await, "subscribed");
    ok(&items(&mut bob, "status", "", None).await);
}

#[tokio::test]
async fn roster_access_needs_an_allowed_roster_group() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(
        &mut alice,
        "family",
        &[
            ("pubsub#access_model", "roster"),
            ("pubsub#roster_groups_allowed", "Family"),
        ],
    )
    .await;
    roster_item(&s, "alice", "bob", Subscription::Both, &["Work"]).await;
    assert_eq!(
        error_of(&subscribe_with(&mut bob, "family").await),
        ("not-authorized".into(), Some("not-in-roster-group".into()))
    );
    roster_item(&s, "alice", "bob", Subscription::Both, &["Family"]).await;
    assert_eq!(subscribe(&mut bob, "family").await, "subscribed");
}

#[tokio::test]
async fn whitelist_nodes_are_closed_to_all_but_members() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "club", &[("pubsub#access_model", "whitelist")]).await;
    assert_eq!(
        error_of(&subscribe_with(&mut bob, "club").await),
        ("not-allowed".into(), Some("closed-node".into()))
    );
    ok(&owner_iq(
        &mut alice,
        "set",
        "<affiliations node='club'><affiliation jid='bob@localhost' affiliation='member'/></affiliations>",
    )
    .await);
    // §8.9.4: bob hears of his new affiliation.
    bob.expect("affiliation notice", |m| {
        m.name() == "message" && m.get_child("pubsub", PUBSUB).is_some()
    })
    .await;
    assert_eq!(subscribe(&mut bob, "club").await, "subscribed");
}

#[tokio::test]
async fn authorize_subscriptions_wait_for_the_owners_approval() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "vip", &[("pubsub#access_model", "authorize")]).await;
    publish(&mut alice, "vip", Some("secret"), &entry("s")).await;
    assert_eq!(subscribe(&mut bob, "vip").await, "pending");
    // Pending is not subscribed: no items yet, no second request.
    assert_eq!(
        error_of(&items(&mut bob, "vip", "", None).await),
        ("not-authorized".into(), Some("not-subscribed".into()))
    );
    assert_eq!(
        error_of(&subscribe_with(&mut bob, "vip").await)
            .1
            .as_deref(),
        Some("pending-subscription")
    );
    let request = alice
        .expect("authorization form", |m| {
            m.name() == "message"
                && m.attr("from") == Some(SERVICE)
                && m.get_child("x", DATA).is_some()
        })
        .await;
    let text = String::from(&request);
    assert!(text.contains("pubsub#subscribe_authorization"), "{text}");
    assert!(text.contains("bob@localhost"), "{text}");
    let id = request.attr("id").unwrap_or_default().to_string();
    alice
        .send(&format!(
            "<message to='{SERVICE}' id='{id}'>{}</message>",
            form(
                "subscribe_authorization",
                &[
                    ("pubsub#node", "vip"),
                    ("pubsub#subscriber_jid", "bob@localhost"),
                    ("pubsub#allow", "true"),
                ]
            )
        ))
        .await;
    let approved = event(&mut bob, "subscription").await;
    assert_eq!(approved.attr("subscription"), Some("subscribed"));
    assert_eq!(
        item_ids(&items(&mut bob, "vip", "", None).await),
        ["secret"]
    );
}

#[tokio::test]
async fn a_denied_request_ends_the_subscription() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "vip", &[("pubsub#access_model", "authorize")]).await;
    assert_eq!(subscribe(&mut bob, "vip").await, "pending");
    alice
        .send(&format!(
            "<message to='{SERVICE}'>{}</message>",
            form(
                "subscribe_authorization",
                &[
                    ("pubsub#node", "vip"),
                    ("pubsub#subscriber_jid", "bob@localhost"),
                    ("pubsub#allow", "false"),
                ]
            )
        ))
        .await;
    let denied = event(&mut bob, "subscription").await;
    assert_eq!(denied.attr("subscription"), Some("none"));
    // A new request may be made.
    assert_eq!(subscribe(&mut bob, "vip").await, "pending");
}

#[tokio::test]
async fn publish_options_are_preconditions_and_configure_auto_created_nodes() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "pc").await;
    let publish_with_options = |node: &str, access: &str| {
        format!(
            "<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item>{}</item></publish><publish-options>{}</publish-options></pubsub>",
            entry("x"),
            form("publish-options", &[("pubsub#access_model", access)])
        )
    };
    // Auto-created with the options.
    let r = alice
        .iq(
            "set",
            Some(SERVICE),
            &publish_with_options("auto", "whitelist"),
        )
        .await;
    ok(&r);
    let cfg = String::from(&owner_iq(&mut alice, "get", "<configure node='auto'/>").await);
    assert!(
        cfg.contains("<field var=\"pubsub#access_model\" type=\"list-single\" label=\"Specify the subscriber model\"><value>whitelist</value>")
            || cfg.contains("<value>whitelist</value>"),
        "{cfg}"
    );
    // Met again: fine; different: precondition-not-met.
    ok(&alice
        .iq(
            "set",
            Some(SERVICE),
            &publish_with_options("auto", "whitelist"),
        )
        .await);
    let r = alice
        .iq("set", Some(SERVICE), &publish_with_options("auto", "open"))
        .await;
    assert_eq!(
        error_of(&r),
        ("conflict".into(), Some("precondition-not-met".into()))
    );
}

#[tokio::test]
async fn affiliations_are_managed_by_owners_and_outcasts_lose_their_subscription() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "team", &[]).await;
    subscribe(&mut bob, "team").await;
    ok(&owner_iq(
        &mut alice,
        "set",
        "<affiliations node='team'><affiliation jid='bob@localhost' affiliation='publisher'/></affiliations>",
    )
    .await);
    publish(&mut bob, "team", None, &entry("by bob")).await;
    // §5.7: bob's own affiliations.
    let mine = bob
        .iq(
            "get",
            Some(SERVICE),
            &format!("<pubsub xmlns='{PUBSUB}'><affiliations/></pubsub>"),
        )
        .await;
    let aff = mine
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("affiliations", PUBSUB))
        .and_then(|a| a.get_child("affiliation", PUBSUB))
        .expect("an affiliation");
    assert_eq!(
        (aff.attr("node"), aff.attr("affiliation")),
        (Some("team"), Some("publisher"))
    );
    let list = owner_iq(&mut alice, "get", "<affiliations node='team'/>").await;
    assert_eq!(
        list.get_child("pubsub", OWNER)
            .and_then(|p| p.get_child("affiliations", OWNER))
            .map(|a| a.children().count()),
        Some(2)
    );
    // The last owner cannot go.
    let r = owner_iq(
        &mut alice,
        "set",
        "<affiliations node='team'><affiliation jid='alice@localhost' affiliation='none'/></affiliations>",
    )
    .await;
    assert_eq!(error_of(&r).0, "not-acceptable");
    ok(&owner_iq(
        &mut alice,
        "set",
        "<affiliations node='team'><affiliation jid='bob@localhost' affiliation='outcast'/></affiliations>",
    )
    .await);
    let subs = owner_iq(&mut alice, "get", "<subscriptions node='team'/>").await;
    assert_eq!(
        subs.get_child("pubsub", OWNER)
            .and_then(|p| p.get_child("subscriptions", OWNER))
            .map(|s| s.children().count()),
        Some(0)
    );
    assert_eq!(
        error_of(&subscribe_with(&mut bob, "team").await).0,
        "forbidden"
    );
    assert_eq!(
        error_of(&items(&mut bob, "team", "", None).await).0,
        "forbidden"
    );
}

#[tokio::test]
async fn subscriptions_are_listed_managed_and_optioned() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "feed", &[]).await;
    subscribe(&mut bob, "feed").await;
    // §5.6
    let mine = bob
        .iq(
            "get",
            Some(SERVICE),
            &format!("<pubsub xmlns='{PUBSUB}'><subscriptions/></pubsub>"),
        )
        .await;
    let sub = mine
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("subscriptions", PUBSUB))
        .and_then(|s| s.get_child("subscription", PUBSUB))
        .expect("a subscription")
        .clone();
    assert_eq!(sub.attr("node"), Some("feed"));
    assert_eq!(sub.attr("subscription"), Some("subscribed"));
    // §6.3: turn delivery off, then nothing arrives.
    let opts = bob
        .iq(
            "get",
            Some(SERVICE),
            &format!(
                "<pubsub xmlns='{PUBSUB}'><options node='feed' jid='bob@localhost'/></pubsub>"
            ),
        )
        .await;
    assert!(String::from(&opts).contains("pubsub#subscribe_options"));
    ok(&bob
        .iq(
            "set",
            Some(SERVICE),
            &format!(
                "<pubsub xmlns='{PUBSUB}'><options node='feed' jid='bob@localhost'>{}</options></pubsub>",
                form("subscribe_options", &[("pubsub#deliver", "false")])
            ),
        )
        .await);
    publish(&mut alice, "feed", None, &entry("unheard")).await;
    no_event(&mut bob).await;
    // §8.8: the owner ends bob's subscription; bob is told.
    ok(&owner_iq(
        &mut alice,
        "set",
        "<subscriptions node='feed'><subscription jid='bob@localhost' subscription='none'/></subscriptions>",
    )
    .await);
    let ended = event(&mut bob, "subscription").await;
    assert_eq!(ended.attr("subscription"), Some("none"));
    // §6.2: unsubscribing again is not-subscribed.
    let r = bob
        .iq(
            "set",
            Some(SERVICE),
            &format!(
                "<pubsub xmlns='{PUBSUB}'><unsubscribe node='feed' jid='bob@localhost'/></pubsub>"
            ),
        )
        .await;
    assert_eq!(
        error_of(&r),
        ("unexpected-request".into(), Some("not-subscribed".into()))
    );
    // §6.1.3.1: subscribing someone else is invalid-jid.
    let r = bob
        .iq(
            "set",
            Some(SERVICE),
            &format!(
                "<pubsub xmlns='{PUBSUB}'><subscribe node='feed' jid='alice@localhost'/></pubsub>"
            ),
        )
        .await;
    assert_eq!(
        error_of(&r),
        ("bad-request".into(), Some("invalid-jid".into()))
    );
}

#[tokio::test]
async fn the_last_item_is_sent_on_subscription_when_configured() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(
        &mut alice,
        "last",
        &[("pubsub#send_last_published_item", "on_sub")],
    )
    .await;
    publish(&mut alice, "last", Some("old"), &entry("1")).await;
    publish(&mut alice, "last", Some("newest"), &entry("2")).await;
    subscribe(&mut bob, "last").await;
    let items = event(&mut bob, "items").await;
    assert_eq!(
        items.get_child("item", EVENT).and_then(|i| i.attr("id")),
        Some("newest")
    );
}

#[tokio::test]
async fn nodes_items_and_subscriptions_survive_a_restart() {
    let s = TestServer::start().await;
    {
        let (mut alice, mut bob) = two_users(&s).await;
        create(&mut alice, "durable", &[("pubsub#title", "Durable")]).await;
        subscribe(&mut bob, "durable").await;
        publish(&mut alice, "durable", Some("kept"), &entry("k")).await;
    }
    let s = s.restart().await;
    let mut alice = online(&s, "alice", "pc").await;
    let mut bob = online(&s, "bob", "phone").await;
    assert_eq!(
        item_ids(&items(&mut bob, "durable", "", None).await),
        ["kept"]
    );
    publish(&mut alice, "durable", Some("after"), &entry("a")).await;
    let items = event(&mut bob, "items").await;
    assert_eq!(
        items.get_child("item", EVENT).and_then(|i| i.attr("id")),
        Some("after")
    );
    let cfg = String::from(&owner_iq(&mut alice, "get", "<configure node='durable'/>").await);
    assert!(cfg.contains("Durable"), "{cfg}");
}

#[tokio::test]
async fn a_removed_account_loses_its_subscriptions() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "n", &[]).await;
    subscribe(&mut bob, "n").await;
    bob.close().await;
    let bob_jid = BareJid::new("bob@localhost").unwrap();
    assert!(s
        .running
        .server
        .stores
        .accounts
        .remove_account(&bob_jid)
        .await
        .unwrap());
    let subs = owner_iq(&mut alice, "get", "<subscriptions node='n'/>").await;
    assert_eq!(
        subs.get_child("pubsub", OWNER)
            .and_then(|p| p.get_child("subscriptions", OWNER))
            .map(|s| s.children().count()),
        Some(0)
    );
}

#[tokio::test]
async fn a_subscriber_whose_notifications_bounce_is_unsubscribed() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = online(&s, "alice", "pc").await;
    create(&mut alice, "n", &[]).await;
    // An owner subscribes an address that has no account.
    ok(&owner_iq(
        &mut alice,
        "set",
        "<subscriptions node='n'><subscription jid='ghost@localhost' subscription='subscribed'/></subscriptions>",
    )
    .await);
    publish(&mut alice, "n", None, &entry("boo")).await;
    // The server answers the notification with service-unavailable
    // (cancel), and the service ends the subscription (§12.5).
    let mut left = usize::MAX;
    for _ in 0..50 {
        let subs = owner_iq(&mut alice, "get", "<subscriptions node='n'/>").await;
        left = subs
            .get_child("pubsub", OWNER)
            .and_then(|p| p.get_child("subscriptions", OWNER))
            .map(|s| s.children().count())
            .unwrap_or(usize::MAX);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0);
}

#[tokio::test]
async fn owners_hear_of_subscribers_when_notify_sub_is_on() {
    let s = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&s).await;
    create(&mut alice, "club", &[("pubsub#notify_sub", "true")]).await;
    subscribe(&mut bob, "club").await;
    let joined = event(&mut alice, "subscription").await;
    assert_eq!(
        (joined.attr("jid"), joined.attr("subscription")),
        (Some("bob@localhost"), Some("subscribed"))
    );
}

#[tokio::test]
async fn an_entity_owns_at_most_max_nodes_per_user() {
    let s = TestServer::start_with(|c| c.pubsub.max_nodes_per_user = 1).await;
    s.user("alice").await;
    let mut alice = online(&s, "alice", "pc").await;
    create(&mut alice, "one", &[]).await;
    assert_eq!(
        error_of(&create_with(&mut alice, "two", &[]).await).0,
        "policy-violation"
    );
}
