//! The server on PostgreSQL storage (`[storage] backend = "postgres"`) over
//! real sockets: accounts, chat, offline delivery across a restart, the
//! archive and a room against the database of `ROOST_TEST_POSTGRES_URL`
//! (scripts/with-postgres.sh), in a schema of its own. Skipped with a
//! message when the variable is unset, except with CI=true, where that
//! fails.

use std::io::Write;

use roost_server::config::StorageBackend;
use roost_testkit::{client::body, TestServer};

fn is_message(e: &minidom::Element) -> bool {
    e.name() == "message" && e.get_child("body", "jabber:client").is_some()
}

/// A connection URL whose sessions work in a fresh schema, and a client
/// to drop it with.
async fn scratch_schema(test: &str) -> Option<(String, String, tokio_postgres::Client)> {
    let url = match std::env::var("ROOST_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "ROOST_TEST_POSTGRES_URL is not set, and CI=true: \
                 run the tests through scripts/with-postgres.sh"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: ROOST_TEST_POSTGRES_URL is not set (see scripts/with-postgres.sh)"
            );
            return None;
        }
    };
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    let schema = format!("roost_{test}_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .expect("create the schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    Some((target, schema, admin))
}

#[tokio::test]
async fn postgres_storage_serves_chat_offline_archive_and_rooms() {
    let Some((url, schema, admin)) = scratch_schema("serve").await else {
        return;
    };
    let s = TestServer::start_with(|c| {
        c.storage.backend = StorageBackend::Postgres;
        c.storage.url = Some(url.clone());
        c.storage.pool_size = 4;
    })
    .await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    a.available().await;
    b.available().await;
    a.send("<message to='bob@localhost/work' type='chat' id='m1'><body>hello bob</body></message>")
        .await;
    let m = b.expect("message", is_message).await;
    assert_eq!(body(&m).as_deref(), Some("hello bob"));
    drop(b);
    a.send(
        "<message to='bob@localhost' type='chat' id='m2'><body>while you were out</body></message>",
    )
    .await;
    // A room: the MUC service keeps it in PostgreSQL.
    a.send("<presence to='lounge@conference.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        .await;
    a.expect("room self-presence", |e| {
        e.name() == "presence" && e.attr("from") == Some("lounge@conference.localhost/alice")
    })
    .await;
    let room = jid::BareJid::new("lounge@conference.localhost").unwrap();
    assert!(s
        .running
        .server
        .stores
        .muc
        .room(&room)
        .await
        .unwrap()
        .is_some());
    drop(a);

    let s = s.restart().await;
    let mut b = s.login("bob", "work").await;
    b.available().await;
    let m = b.expect("offline message", is_message).await;
    assert_eq!(body(&m).as_deref(), Some("while you were out"));

    let mut a = s.login("alice", "home").await;
    let id = a.new_id();
    a.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>"
    ))
    .await;
    let mut archived = Vec::new();
    loop {
        let e = a.recv().await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            assert_eq!(e.attr("type"), Some("result"), "{}", String::from(&e));
            break;
        }
        if let Some(r) = e.get_child("result", "urn:xmpp:mam:2") {
            let fwd = r.get_child("forwarded", "urn:xmpp:forward:0").unwrap();
            archived
                .push(body(fwd.get_child("message", "jabber:client").unwrap()).unwrap_or_default());
        }
    }
    assert_eq!(archived, ["hello bob", "while you were out"]);
    drop((a, b));
    s.running.stop().await;
    drop(s);
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
}
