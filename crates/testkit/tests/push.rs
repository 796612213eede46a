//! XEP-0357 push notifications over real sockets. The app server is a
//! client session (`pusher@localhost/app`, as ejabberd's own tests do) or
//! an XEP-0114 component; it gets exactly the pushes described in the
//! README: 1:1 messages for a hibernated or absent device, call proposals
//! for an inactive one, room mentions with no session online (per room
//! policy), nothing for receipts and chat states, nothing after disable,
//! and a registration dropped after the app server's errors.

use std::time::Duration;

use minidom::Element;
use roost_core::config::ComponentConfig;
use roost_testkit::{component, Client, Conn, TestServer};

const PUSH: &str = "urn:xmpp:push:0";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const QUIET: Duration = Duration::from_millis(400);

async fn server_with(tweak: impl FnOnce(&mut roost_server::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.push.min_interval = 0;
        tweak(c)
    })
    .await
}

async fn online(s: &TestServer, user: &str, res: &str) -> Client {
    s.user(user).await;
    let mut c = s.login(user, res).await;
    c.available().await;
    c
}

/// alice/phone registers with the app server `app`, node `node`.
async fn enable(phone: &mut Client, app: &str, node: &str) {
    let r = phone
        .iq(
            "set",
            None,
            &format!(
                "<enable xmlns='{PUSH}' jid='{app}' node='{node}'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
                 <field var='secret'><value>s3cret</value></field></x></enable>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

fn is_push(e: &Element) -> bool {
    e.name() == "iq" && e.attr("type") == Some("set") && e.has_child("pubsub", PUBSUB)
}

/// The summary form's fields of a push.
fn summary(push: &Element) -> Vec<(String, String)> {
    let publish = push
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish", PUBSUB))
        .expect("publish");
    let form = publish
        .get_child("item", PUBSUB)
        .and_then(|i| i.get_child("notification", PUSH))
        .and_then(|n| n.get_child("x", "jabber:x:data"))
        .expect("summary form");
    form.children()
        .map(|f| {
            (
                f.attr("var").unwrap_or_default().to_string(),
                f.children().next().map(|v| v.text()).unwrap_or_default(),
            )
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], var: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(v, _)| v == var)
        .map(|(_, x)| x.as_str())
}

/// The app server takes a push and answers it.
async fn take_push(app: &mut Client) -> Element {
    let p = app.expect("a push", is_push).await;
    let id = p.attr("id").unwrap().to_string();
    let from = p.attr("from").unwrap().to_string();
    app.send(&format!("<iq type='result' id='{id}' to='{from}'/>"))
        .await;
    p
}

async fn no_push(app: &mut Client) {
    if let Some(p) = app.gets_within(QUIET, is_push).await {
        panic!("unexpected push: {}", String::from(&p));
    }
}

fn chat(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat'><body>{body}</body></message>")
}

#[tokio::test]
async fn a_hibernated_or_absent_device_gets_a_push_for_a_chat_message() {
    let s = server_with(|_| {}).await;
    let mut app = online(&s, "pusher", "app").await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "pusher@localhost/app", "n1").await;
    let mut bob = online(&s, "bob", "desk").await;
    // The device hears it: no push.
    bob.send(&chat("alice@localhost", "while awake")).await;
    phone.expect("message", |e| e.name() == "message").await;
    no_push(&mut app).await;
    // Hibernated (stream management waiting for resumption).
    phone.enable_sm().await;
    phone.drop_connection();
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob.send(&chat("alice@localhost", "are you there?")).await;
    let p = take_push(&mut app).await;
    assert_eq!(p.attr("from"), Some("alice@localhost"));
    let publish = p
        .get_child("pubsub", PUBSUB)
        .and_then(|x| x.get_child("publish", PUBSUB))
        .unwrap();
    assert_eq!(publish.attr("node"), Some("n1"));
    let f = summary(&p);
    assert_eq!(field(&f, "FORM_TYPE"), Some("urn:xmpp:push:summary"));
    assert_eq!(field(&f, "message-count"), Some("1"));
    assert_eq!(field(&f, "last-message-sender"), Some("bob@localhost/desk"));
    assert_eq!(
        field(&f, "last-message-body"),
        None,
        "bodies stay out by default"
    );
    // The publish-options are passed through.
    assert!(String::from(&p).contains("s3cret"), "{}", String::from(&p));
    // Receipts and chat states do not push.
    bob.send("<message to='alice@localhost' type='chat'><received xmlns='urn:xmpp:receipts' id='x'/></message>")
        .await;
    bob.send("<message to='alice@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    no_push(&mut app).await;
    // A second message counts on.
    bob.send(&chat("alice@localhost", "hello?")).await;
    let p = take_push(&mut app).await;
    assert_eq!(field(&summary(&p), "message-count"), Some("2"));
}

#[tokio::test]
async fn an_account_with_no_session_pushes_and_a_returning_device_counts_afresh() {
    let s = server_with(|c| c.push.include_body = true).await;
    let mut app = online(&s, "pusher", "app").await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "pusher@localhost/app", "n1").await;
    phone.close().await;
    let mut bob = online(&s, "bob", "desk").await;
    bob.send(&chat("alice@localhost", "offline one")).await;
    let p = take_push(&mut app).await;
    let f = summary(&p);
    assert_eq!(field(&f, "message-count"), Some("1"));
    assert_eq!(field(&f, "last-message-body"), Some("offline one"));
    // The phone comes back and leaves again: counting starts over.
    let phone = s.login("alice", "phone").await;
    phone.close().await;
    bob.send(&chat("alice@localhost", "offline two")).await;
    let p = take_push(&mut app).await;
    assert_eq!(field(&summary(&p), "message-count"), Some("1"));
}

#[tokio::test]
async fn an_inactive_device_gets_pushes_for_calls_only() {
    let s = server_with(|_| {}).await;
    let mut app = online(&s, "pusher", "app").await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "pusher@localhost/app", "n1").await;
    phone.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = online(&s, "bob", "desk").await;
    bob.send(&chat("alice@localhost/phone", "just text")).await;
    no_push(&mut app).await;
    bob.send("<message to='alice@localhost/phone' type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='call1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>")
        .await;
    take_push(&mut app).await;
}

#[tokio::test]
async fn disable_stops_pushes() {
    let s = server_with(|_| {}).await;
    let mut app = online(&s, "pusher", "app").await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "pusher@localhost/app", "n1").await;
    let r = phone
        .iq(
            "set",
            None,
            &format!("<disable xmlns='{PUSH}' jid='pusher@localhost/app' node='n1'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    phone.close().await;
    let mut bob = online(&s, "bob", "desk").await;
    bob.send(&chat("alice@localhost", "nobody wakes")).await;
    no_push(&mut app).await;
}

#[tokio::test]
async fn a_registration_is_dropped_after_repeated_app_server_errors() {
    let s = server_with(|c| c.push.max_errors = 2).await;
    let mut app = online(&s, "pusher", "app").await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "pusher@localhost/app", "n1").await;
    phone.close().await;
    let mut bob = online(&s, "bob", "desk").await;
    for i in 0..2 {
        bob.send(&chat("alice@localhost", &format!("m{i}"))).await;
        let p = app.expect("a push", is_push).await;
        app.send(&format!(
            "<iq type='error' id='{}' to='alice@localhost'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            p.attr("id").unwrap()
        ))
        .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob.send(&chat("alice@localhost", "after the errors")).await;
    no_push(&mut app).await;
}

#[tokio::test]
async fn pushes_to_one_device_are_throttled() {
    let s = TestServer::start_with(|c| c.push.min_interval = 60).await;
    let mut app = online(&s, "pusher", "app").await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "pusher@localhost/app", "n1").await;
    phone.close().await;
    let mut bob = online(&s, "bob", "desk").await;
    bob.send(&chat("alice@localhost", "first")).await;
    take_push(&mut app).await;
    bob.send(&chat("alice@localhost", "second")).await;
    no_push(&mut app).await;
}

#[tokio::test]
async fn a_component_app_server_gets_the_push() {
    let s = server_with(|c| {
        c.component = vec![ComponentConfig {
            domain: "push.localhost".into(),
            secret: "app secret".into(),
        }]
    })
    .await;
    let mut comp: Conn = component::connect(
        s.running.component.expect("component port"),
        "push.localhost",
        "app secret",
    )
    .await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "push.localhost", "device-token").await;
    phone.close().await;
    let mut bob = online(&s, "bob", "desk").await;
    bob.send(&chat("alice@localhost", "via the component"))
        .await;
    let p = loop {
        let el = comp.next_element().await.expect("a push");
        if el.name() == "iq" {
            break el;
        }
    };
    assert_eq!(p.attr("to"), Some("push.localhost"));
    assert!(
        String::from(&p).contains("device-token"),
        "{}",
        String::from(&p)
    );
}

#[tokio::test]
async fn a_pushed_device_hibernates_for_resume_timeout_push() {
    let s = server_with(|c| {
        c.stream_management.resume_timeout = 1;
        c.stream_management.resume_timeout_push = 30;
    })
    .await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "pusher@localhost/app", "n1").await;
    let previd = phone.enable_sm().await;
    phone.drop_connection();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut c = Conn::secured(s.c2s(), false).await;
    c.authenticate("alice", "pw-alice", roost_testkit::Mech::ScramSha256)
        .await
        .unwrap();
    c.open_stream().await;
    let answer = c.resume(&previd, 0).await;
    assert_eq!(answer.name(), "resumed", "{}", String::from(&answer));
}

#[tokio::test]
async fn enable_needs_a_jid_and_a_node() {
    let s = server_with(|_| {}).await;
    let mut phone = online(&s, "alice", "phone").await;
    for bad in [
        format!("<enable xmlns='{PUSH}' node='n'/>"),
        format!("<enable xmlns='{PUSH}' jid='push.localhost'/>"),
    ] {
        let r = phone.iq("set", None, &bad).await;
        assert_eq!(r.attr("type"), Some("error"), "{bad}");
    }
    let info = phone
        .iq(
            "get",
            Some("alice@localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert!(
        String::from(&info).contains(PUSH),
        "{}",
        String::from(&info)
    );
}

/// alice's bookmark of `room` (autojoin, nick Al), with `extensions`.
async fn bookmark(c: &mut Client, room: &str, extensions: &str) {
    let r = c
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{PUBSUB}'><publish node='urn:xmpp:bookmarks:1'><item id='{room}'>\
                 <conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>Al</nick>{extensions}</conference></item></publish>\
                 <publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
                 <field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

fn groupchat(room: &str, body: &str) -> String {
    format!("<message to='{room}' type='groupchat'><body>{body}</body></message>")
}

#[tokio::test]
async fn room_messages_push_by_the_rooms_policy_with_no_session_online() {
    let s = server_with(|_| {}).await;
    let room = "hall@conference.localhost";
    let mut app = online(&s, "pusher", "app").await;
    let mut bob = online(&s, "bob", "desk").await;
    bob.join_room(room, "Bob").await;
    bob.configure_room(room, &[("muc#roomconfig_persistentroom", "1")])
        .await;
    let mut phone = online(&s, "alice", "phone").await;
    enable(&mut phone, "pusher@localhost/app", "n1").await;
    bookmark(&mut phone, room, "").await;
    bob.expect("Al joins", |e| {
        e.name() == "presence" && e.attr("from") == Some("hall@conference.localhost/Al")
    })
    .await;
    phone.close().await;
    // Default policy: mentions. A message that does not name alice: nothing.
    bob.send(&groupchat(room, "hello everyone")).await;
    no_push(&mut app).await;
    // One that does: a push from the occupant.
    bob.send(&groupchat(room, "hey Al, are you around?")).await;
    let p = take_push(&mut app).await;
    assert_eq!(
        field(&summary(&p), "last-message-sender"),
        Some("hall@conference.localhost/Bob")
    );
    // A private message from the room: a push.
    bob.send("<message to='hall@conference.localhost/Al' type='chat'><body>psst</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>")
        .await;
    take_push(&mut app).await;
    // Policy "always" (our bookmark extension): every message pushes.
    let mut phone = s.login("alice", "phone").await;
    bookmark(
        &mut phone,
        room,
        "<extensions><push xmlns='urn:roost:push:0' notify='always'/></extensions>",
    )
    .await;
    phone.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob.send(&groupchat(room, "small talk")).await;
    take_push(&mut app).await;
    // XEP-0492 "never": even a mention stays quiet.
    let mut phone = s.login("alice", "phone").await;
    bookmark(
        &mut phone,
        room,
        "<extensions><notify xmlns='urn:xmpp:notification-settings:1'><never/></notify></extensions>",
    )
    .await;
    phone.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob.send(&groupchat(room, "Al? anyone?")).await;
    no_push(&mut app).await;
}
