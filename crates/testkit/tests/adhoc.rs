//! XEP-0050 ad-hoc commands and XEP-0133 service administration over a
//! real session: what each user sees, a two-step command, admin commands
//! refused to others.

use minidom::Element;
use roost_testkit::{Client, TestServer};

const CMD: &str = "http://jabber.org/protocol/commands";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.admins = vec!["admin@localhost".into()]).await
}

async fn commands(c: &mut Client) -> Vec<String> {
    let r = c
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{CMD}'/>"),
        )
        .await;
    r.get_child("query", "http://jabber.org/protocol/disco#items")
        .expect("items")
        .children()
        .filter_map(|i| i.attr("node").map(str::to_string))
        .collect()
}

async fn execute(c: &mut Client, node: &str, inner: &str) -> Element {
    c.iq(
        "set",
        Some("localhost"),
        &format!("<command xmlns='{CMD}' node='{node}' action='execute'>{inner}</command>"),
    )
    .await
}

fn submit(fields: &[(&str, &str)]) -> String {
    let mut x = String::from("<x xmlns='jabber:x:data' type='submit'>");
    for (var, value) in fields {
        x.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    x + "</x>"
}

#[tokio::test]
async fn admins_and_users_see_their_commands_and_run_them() {
    let s = server().await;
    s.user("admin").await;
    s.user("alice").await;
    let mut admin = s.login("admin", "desk").await;
    let mut alice = s.login("alice", "phone").await;
    let mine = commands(&mut alice).await;
    assert!(mine.contains(&"ping".to_string()));
    assert!(!mine.iter().any(|n| n.contains("admin#")), "{mine:?}");
    let theirs = commands(&mut admin).await;
    assert!(theirs.contains(&"http://jabber.org/protocol/admin#add-user".to_string()));

    // Two steps: the form, then the submitted form.
    let node = "http://jabber.org/protocol/admin#add-user";
    let r = execute(&mut admin, node, "").await;
    let cmd = r.get_child("command", CMD).expect("command");
    assert_eq!(cmd.attr("status"), Some("executing"));
    assert!(cmd.has_child("x", "jabber:x:data"));
    let r = execute(
        &mut admin,
        node,
        &submit(&[
            ("accountjid", "carol@localhost"),
            ("password", "pw-carol"),
            ("password-verify", "pw-carol"),
        ]),
    )
    .await;
    assert_eq!(
        r.get_child("command", CMD).and_then(|c| c.attr("status")),
        Some("completed"),
        "{}",
        String::from(&r)
    );
    // carol can log in now.
    let _carol = s.login("carol", "phone").await;
    // Registered users: admin, alice, carol.
    let r = execute(
        &mut admin,
        "http://jabber.org/protocol/admin#get-registered-users-num",
        "",
    )
    .await;
    assert!(
        String::from(&r).contains("<value>3</value>"),
        "{}",
        String::from(&r)
    );

    // alice may not.
    let r = execute(&mut alice, node, "").await;
    assert_eq!(r.attr("type"), Some("error"));
    assert!(String::from(&r).contains("forbidden"));
    let r = execute(&mut alice, "ping", "").await;
    assert_eq!(
        r.get_child("command", CMD).and_then(|c| c.attr("status")),
        Some("completed")
    );

    // Ending alice's sessions closes her stream.
    execute(
        &mut admin,
        "http://jabber.org/protocol/admin#end-user-session",
        &submit(&[("accountjids", "alice@localhost")]),
    )
    .await;
    assert_eq!(alice.conn.stream_error().await, "policy-violation");
}

#[tokio::test]
async fn users_list_and_revoke_their_push_registrations() {
    let s = server().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "phone").await;
    let r = alice
        .iq(
            "set",
            None,
            "<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n1'/>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let node = "urn:roost:command:push-registrations";
    let r = execute(&mut alice, node, "").await;
    assert!(
        String::from(&r).contains("push.example.org n1"),
        "{}",
        String::from(&r)
    );
    let r = execute(
        &mut alice,
        node,
        &submit(&[("revoke", "push.example.org n1")]),
    )
    .await;
    assert!(
        String::from(&r).contains("0 registration(s) left"),
        "{}",
        String::from(&r)
    );
    let r = execute(&mut alice, node, "").await;
    assert!(!String::from(&r).contains("push.example.org n1"));
}

fn status(r: &Element) -> Option<&str> {
    r.get_child("command", CMD).and_then(|c| c.attr("status"))
}

#[tokio::test]
async fn a_disabled_account_is_logged_out_and_refused_until_re_enabled() {
    use roost_testkit::{Login, Mech};
    let s = server().await;
    s.user("admin").await;
    s.user("mallory").await;
    let mut admin = s.login("admin", "desk").await;
    let mut m = s.login("mallory", "phone").await;
    let disable = "http://jabber.org/protocol/admin#disable-user";
    let r = execute(&mut admin, disable, "").await;
    assert_eq!(status(&r), Some("executing"));
    let r = execute(
        &mut admin,
        disable,
        &submit(&[("accountjids", "mallory@localhost")]),
    )
    .await;
    assert_eq!(status(&r), Some("completed"), "{}", String::from(&r));
    // XEP-0133 §4.5: the session ends...
    assert!(m.conn.stream_error().await.contains("not-authorized"));
    // ... and logins fail with RFC 6120 §6.5.1 account-disabled, whatever
    // the mechanism; a wrong password is still just not-authorized.
    for mech in [Mech::ScramSha256, Mech::Plain] {
        let login = Login::new("mallory", "pw-mallory").mech(mech);
        let err = roost_testkit::Client::login(s.c2s(), login).await.err();
        assert_eq!(err.as_deref(), Some("account-disabled"), "{mech:?}");
    }
    let wrong = Login::new("mallory", "wrong");
    let err = roost_testkit::Client::login(s.c2s(), wrong).await.err();
    assert_eq!(err.as_deref(), Some("not-authorized"));
    // The data is kept, and a restart does not forget the state.
    let s = s.restart().await;
    let login = Login::new("mallory", "pw-mallory");
    let err = roost_testkit::Client::login(s.c2s(), login).await.err();
    assert_eq!(err.as_deref(), Some("account-disabled"));
    let mut admin = s.login("admin", "desk").await;
    let r = execute(
        &mut admin,
        "http://jabber.org/protocol/admin#reenable-user",
        &submit(&[("accountjids", "mallory@localhost")]),
    )
    .await;
    assert_eq!(status(&r), Some("completed"), "{}", String::from(&r));
    s.login("mallory", "phone").await;
    // A user may not disable anyone; unknown accounts are not found.
    let mut m = s.login("mallory", "laptop").await;
    let r = execute(&mut m, disable, "").await;
    assert_eq!(r.attr("type"), Some("error"));
    assert!(String::from(&r).contains("forbidden"));
    let r = execute(
        &mut admin,
        disable,
        &submit(&[("accountjids", "ghost@localhost")]),
    )
    .await;
    assert!(
        String::from(&r).contains("item-not-found"),
        "{}",
        String::from(&r)
    );
}

fn is_motd(e: &Element, text: &str) -> bool {
    e.name() == "message"
        && e.attr("from") == Some("localhost")
        && e.get_child("body", "jabber:client")
            .is_some_and(|b| b.text() == text)
}

#[tokio::test]
async fn the_message_of_the_day_reaches_each_account_once() {
    let s = server().await;
    for u in ["admin", "alice", "bob"] {
        s.user(u).await;
    }
    let mut admin = s.login("admin", "desk").await;
    admin.available().await;
    let mut alice = s.login("alice", "phone").await;
    alice.available().await;
    let set = "http://jabber.org/protocol/admin#set-motd";
    let r = execute(&mut admin, set, &submit(&[("motd", "maintenance at noon")])).await;
    assert_eq!(status(&r), Some("completed"), "{}", String::from(&r));
    // Online now: sent at once.
    alice
        .expect("the motd", |e| is_motd(e, "maintenance at noon"))
        .await;
    // bob logs in later and gets it with his first available session...
    let mut bob = s.login("bob", "phone").await;
    bob.available().await;
    bob.expect("the motd", |e| is_motd(e, "maintenance at noon"))
        .await;
    // ... but not again on his next login.
    let mut bob2 = s.login("bob", "laptop").await;
    bob2.available().await;
    let again = bob2
        .gets_within(std::time::Duration::from_millis(500), |e| {
            is_motd(e, "maintenance at noon")
        })
        .await;
    assert!(again.is_none());
    // The edit form shows it; an edit is a new message.
    let edit = "http://jabber.org/protocol/admin#edit-motd";
    let r = execute(&mut admin, edit, "").await;
    assert!(String::from(&r).contains("maintenance at noon"));
    execute(&mut admin, edit, &submit(&[("motd", "moved to 2 pm")])).await;
    bob2.expect("the new motd", |e| is_motd(e, "moved to 2 pm"))
        .await;
    // Deleted: nobody new gets one.
    let r = execute(
        &mut admin,
        "http://jabber.org/protocol/admin#delete-motd",
        "",
    )
    .await;
    assert_eq!(status(&r), Some("completed"));
    s.user("carol").await;
    let mut carol = s.login("carol", "phone").await;
    carol.available().await;
    let none = carol
        .gets_within(std::time::Duration::from_millis(500), |e| {
            e.attr("from") == Some("localhost") && e.name() == "message"
        })
        .await;
    assert!(none.is_none(), "{none:?}");
}
