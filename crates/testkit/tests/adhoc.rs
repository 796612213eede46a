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
