//! The cluster (issue "scale-out"): NATS, PostgreSQL and three Roost nodes
//! on loopback, each started from the built binary with its own ports and
//! data folder, sharing one database schema and one NATS server.
//!
//! Clients are spread over the nodes: chat, subscriptions and presence,
//! MAM, and a room that one account occupies from sessions on all three
//! nodes (account-based joining). Then the node that owns both the room
//! and that account is killed with SIGKILL, and the test checks that the
//! other nodes' clients keep chatting, that the account and the room move
//! (the sessions left bind again and the account rejoins the room by
//! itself), that contacts see the dead node's session go, and that no
//! message acknowledged to a sender (XEP-0198) is lost.
//!
//! Needs `ROOST_TEST_POSTGRES_URL` (scripts/with-postgres.sh) and a
//! `nats-server` (`ROOST_TEST_NATS_SERVER`, else in PATH or /usr/sbin;
//! scripts/with-nats.sh installs Debian's). Without them the test says it
//! is skipped, except with CI=true, where it fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use roost_testkit::binary::{free_port, roost_bin};
use roost_testkit::client::body;
use roost_testkit::{Client, Login};

const DOMAIN: &str = "localhost";
const MAM: &str = "urn:xmpp:mam:2";

fn skip_or_fail<T>(what: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}, and CI=true: run the tests through scripts/with-postgres.sh and scripts/with-nats.sh");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED cluster test: {what}");
    None
}

fn nats_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ROOST_TEST_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.exists())
}

/// A child process killed when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Node {
    name: String,
    config: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
    component: SocketAddr,
    proc: Proc,
}

impl Node {
    fn new(dir: &Path, name: &str, db_url: &str, nats: &str) -> Node {
        let port = free_port();
        let component = free_port();
        let data = dir.join(name);
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "domain = \"{DOMAIN}\"\ndata_dir = \"{}\"\nlog = \"info\"\n\n\
                 [listen]\nc2s = \"127.0.0.1:{port}\"\nc2s_tls = \"\"\nhttp = \"\"\n\
                 https = \"\"\nproxy65 = \"\"\ncomponent = \"127.0.0.1:{component}\"\n\n\
                 [[component]]\ndomain = \"bot.localhost\"\nsecret = \"bot-secret\"\n\n\
                 [storage]\nbackend = \"postgres\"\nurl = \"{db_url}\"\npool_size = 4\n\n\
                 [account_muc]\nself_ping_interval = 3\n\n\
                 [cluster]\nenabled = true\nnode = \"{name}\"\nnats = \"{nats}\"\n\
                 heartbeat_ms = 500\nlease_ms = 2000\n",
                data.display()
            ),
        )
        .expect("config");
        Node {
            name: name.to_string(),
            log: dir.join(format!("{name}.log")),
            config,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            component: SocketAddr::from(([127, 0, 0, 1], component)),
            proc: Proc(None),
        }
    }

    async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(roost_bin())
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("roost serve");
        self.proc = Proc(Some(child));
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} did not start listening within 10 s:\n{}",
            self.name,
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn roost(&self, args: &[&str]) -> String {
        let out = Command::new(roost_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("roost");
        assert!(
            out.status.success(),
            "roost {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

async fn login(node: &Node, user: &str, resource: &str) -> Client {
    let mut c = Client::login(
        node.addr,
        Login::new(user, &format!("pw-{user}"))
            .resource(resource)
            .domain(DOMAIN),
    )
    .await
    .unwrap_or_else(|e| panic!("login {user}/{resource} at {}: {e}", node.name));
    c.available().await;
    c
}

const SASL2: &str = "urn:xmpp:sasl:2";
const FAST: &str = "urn:xmpp:fast:0";
const UA: &str =
    "<user-agent id='5c1d7e3a-2f4b-4e8a-9d6c-0b7a1e2f3c4d'><software>Test</software></user-agent>";

async fn secured(node: &Node) -> (roost_testkit::Conn, Element) {
    let mut c = roost_testkit::Conn::connect(node.addr, false)
        .await
        .expect("connect");
    c.domain = DOMAIN.into();
    c.open_stream().await;
    c.starttls().await;
    let f = c.open_stream().await;
    (c, f)
}

/// XEP-0484: a token issued by one node logs in at another.
async fn fast_token_works_across_nodes(issuer: &Node, other: &Node, user: &str) {
    let (mut c, _) = secured(issuer).await;
    let ok = c
        .authenticate2(
            user,
            &format!("pw-{user}"),
            &format!("{UA}<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>"),
        )
        .await;
    assert_eq!(ok.name(), "success", "{}", String::from(&ok));
    let token = ok
        .get_child("token", FAST)
        .and_then(|t| t.attr("token"))
        .expect("a token")
        .to_string();
    let (mut c, _) = secured(other).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut msg = format!("{user}\0").into_bytes();
    msg.extend(roost_sasl::ht::initiator(token.as_bytes(), b""));
    use base64::Engine;
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='HT-SHA-256-NONE'><initial-response>{}</initial-response>{UA}<fast xmlns='{FAST}'/></authenticate>",
        b64.encode(&msg)
    ))
    .await;
    let r = c.next_element().await.expect("an answer");
    assert_eq!(
        r.name(),
        "success",
        "FAST token of {} at {}: {}",
        issuer.name,
        other.name,
        String::from(&r)
    );
}

/// A name with `prefix` whose owner among `nodes` is `owner`.
fn owned_by(nodes: &[&str], owner: &str, prefix: &str, suffix: &str) -> String {
    let list: Vec<Arc<str>> = nodes.iter().map(|n| Arc::from(*n)).collect();
    (0..10_000)
        .map(|i| format!("{prefix}{i}{suffix}"))
        .find(|k| {
            roost_core::cluster::rendezvous::owner(&list, k).is_some_and(|n| n.as_ref() == owner)
        })
        .expect("a key owned by the node")
}

fn local(jid: &str) -> &str {
    jid.split('@').next().unwrap_or(jid)
}

fn is_message_with(e: &Element, text: &str) -> bool {
    e.name() == "message" && body(e).as_deref() == Some(text)
}

fn is_groupchat(e: &Element, text: &str) -> bool {
    is_message_with(e, text) && e.attr("type") == Some("groupchat")
}

/// Bodies of the account's archive (XEP-0313), oldest first.
async fn archived_bodies(c: &mut Client) -> Vec<String> {
    let qid = c.new_id();
    let r = c
        .iq(
            "set",
            None,
            &format!("<query xmlns='{MAM}' queryid='{qid}'><set xmlns='http://jabber.org/protocol/rsm'><max>250</max></set></query>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let mut bodies = Vec::new();
    while let Some(i) = c.held_position(|e| {
        e.name() == "message"
            && e.get_child("result", MAM)
                .is_some_and(|r| r.attr("queryid") == Some(qid.as_str()))
    }) {
        let m = c.take_held(i);
        if let Some(b) = m
            .get_child("result", MAM)
            .and_then(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
            .and_then(|f| f.get_child("message", "jabber:client"))
            .and_then(body)
        {
            bodies.push(b);
        }
    }
    bodies
}

/// Bob says `<tag>-<n>` in the room until the room reflects it to him
/// (it accepts him again) and it reaches alice's session `a1` (her account
/// is in again): the room came back by itself. At most 30 s; the text that
/// got through and the number of tries.
async fn room_carries(
    b: &mut Client,
    a1: &mut Client,
    room: &str,
    tag: &str,
    logs: impl Fn() -> String,
) -> (String, u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        let text = format!("{tag}-{n}");
        b.say(room, &text).await;
        let reflected = b
            .gets_within(Duration::from_secs(2), |e| is_groupchat(e, &text))
            .await
            .is_some();
        if reflected
            && a1
                .gets_within(Duration::from_secs(5), |e| is_groupchat(e, &text))
                .await
                .is_some()
        {
            return (text, n);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room did not come back within 30 s ({tag})\n{}",
            logs()
        );
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    _nats: Proc,
    nodes: Vec<Node>,
}

async fn setup() -> Option<Setup> {
    let Ok(pg) = std::env::var("ROOST_TEST_POSTGRES_URL") else {
        return skip_or_fail("ROOST_TEST_POSTGRES_URL is not set");
    };
    let Some(nats) = nats_bin() else {
        return skip_or_fail("no nats-server");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // A schema of its own in the test database, for the three nodes.
    let schema = format!("roost_cluster_{}", std::process::id());
    let (client, conn) = tokio_postgres::connect(&pg, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .expect("schema");
    drop(client);
    let _ = task.await;
    let sep = if pg.contains('?') { '&' } else { '?' };
    let db_url = format!("{pg}{sep}options=-c%20search_path%3D{schema}");
    let nats_port = free_port();
    let nats_proc = Command::new(nats)
        .args(["-a", "127.0.0.1", "-p", &nats_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server");
    let nats_proc = Proc(Some(nats_proc));
    let nats_addr = SocketAddr::from(([127, 0, 0, 1], nats_port));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(nats_addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let mut nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| Node::new(dir.path(), n, &db_url, &nats_url))
        .collect();
    for n in nodes.iter_mut() {
        n.start().await;
    }
    Some(Setup {
        _dir: dir,
        _nats: nats_proc,
        nodes,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_the_loss_of_the_owner_of_a_room_and_an_account() {
    let Some(mut s) = setup().await else {
        return;
    };
    let names = ["n1", "n2", "n3"];
    // The victim: n3. The room and alice's account are n3's; bob's and
    // carol's accounts are not.
    let room = owned_by(&names, "n3", "lobby", "@conference.localhost");
    let alice = owned_by(&names, "n3", "alice", "@localhost");
    let bob = owned_by(&names, "n1", "bob", "@localhost");
    let carol = owned_by(&names, "n2", "carol", "@localhost");
    for u in [&alice, &bob, &carol] {
        let l = local(u);
        s.nodes[0].roost(&["user", "add", u, "--password", &format!("pw-{l}")]);
    }

    // `roost cluster status` sees three nodes.
    let status = s.nodes[0].roost(&["cluster", "status"]);
    for n in names {
        assert!(status.contains(&format!("\n{n} ")), "status:\n{status}");
    }

    let (n1, n2, n3) = (&s.nodes[0], &s.nodes[1], &s.nodes[2]);
    fast_token_works_across_nodes(n1, n2, local(&carol)).await;
    let mut a1 = login(n1, local(&alice), "a1").await;
    let mut a2 = login(n2, local(&alice), "a2").await;
    let mut a3 = login(n3, local(&alice), "a3").await;
    let mut b = login(n1, local(&bob), "b").await;
    let mut c = login(n2, local(&carol), "c").await;

    // Presence across nodes: carol and alice subscribe to each other.
    c.send(&format!("<presence to='{alice}' type='subscribe'/>"))
        .await;
    a1.expect("subscribe", |e| {
        e.name() == "presence" && e.attr("type") == Some("subscribe")
    })
    .await;
    a1.send(&format!("<presence to='{carol}' type='subscribed'/>"))
        .await;
    a1.send(&format!("<presence to='{carol}' type='subscribe'/>"))
        .await;
    c.expect("subscribe", |e| {
        e.name() == "presence" && e.attr("type") == Some("subscribe")
    })
    .await;
    c.send(&format!("<presence to='{alice}' type='subscribed'/>"))
        .await;
    let a3_jid = format!("{alice}/a3");
    c.expect("alice/a3 available", |e| {
        e.name() == "presence"
            && e.attr("from") == Some(a3_jid.as_str())
            && e.attr("type").is_none()
    })
    .await;

    // Chat across nodes, both ways, and to a bare JID.
    b.send(&format!(
        "<message to='{carol}' type='chat' id='m1'><body>b-to-c</body></message>"
    ))
    .await;
    c.expect("b-to-c", |e| is_message_with(e, "b-to-c")).await;
    c.send(&format!(
        "<message to='{alice}/a2' type='chat' id='m2'><body>c-to-a2</body></message>"
    ))
    .await;
    a2.expect("c-to-a2", |e| is_message_with(e, "c-to-a2"))
        .await;

    // A persistent room; alice occupies it from sessions on three nodes.
    b.create_configured_room(&room, "bob", &[("muc#roomconfig_persistentroom", "1")])
        .await;
    for (cl, _) in [(&mut a1, "a1"), (&mut a2, "a2"), (&mut a3, "a3")] {
        cl.join_room(&room, "alice").await;
    }
    b.say(&room, "hello-all").await;
    for cl in [&mut a1, &mut a2, &mut a3] {
        cl.expect_groupchat("hello-all").await;
    }
    a2.say(&room, "from-a2").await;
    b.expect_groupchat("from-a2").await;
    a1.expect_groupchat("from-a2").await;
    a3.expect_groupchat("from-a2").await;

    // An external component connected to n1 is reached from n2, and
    // reaches a client of n2.
    let mut bot =
        roost_testkit::component::connect(n1.component, "bot.localhost", "bot-secret").await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // a heartbeat says where it is
    c.send("<message to='echo@bot.localhost' id='cb1'><body>to-bot</body></message>")
        .await;
    let got = bot
        .next_element()
        .await
        .expect("the component gets the message");
    let text = got
        .children()
        .find(|b| b.name() == "body")
        .map(|b| b.text());
    assert_eq!(text.as_deref(), Some("to-bot"), "{}", String::from(&got));
    bot.send(&format!("<message from='echo@bot.localhost' to='{carol}/c' id='cb2'><body>from-bot</body></message>")).await;
    c.expect("from-bot", |e| is_message_with(e, "from-bot"))
        .await;

    // MAM across nodes.
    let archived = archived_bodies(&mut c).await;
    assert!(
        archived.contains(&"b-to-c".to_string()),
        "carol's archive: {archived:?}"
    );

    let status = n1.roost(&["cluster", "status"]);
    assert!(status.contains(&room), "the room runs somewhere: {status}");

    // Bob keeps sending to alice (bare JID, acknowledged with XEP-0198)
    // while n3, the owner of alice's account and of the room, dies.
    b.enable_sm().await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let text = format!("before-{i}");
        b.send(&format!(
            "<message to='{alice}' type='chat' id='k{i}'><body>{text}</body></message>"
        ))
        .await;
        sent.push(text);
    }
    s.nodes[2].proc.kill();
    drop(a3);
    for i in 0..20 {
        let text = format!("during-{i}");
        b.send(&format!(
            "<message to='{alice}' type='chat' id='d{i}'><body>{text}</body></message>"
        ))
        .await;
        sent.push(text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (n1, n2) = (&s.nodes[0], &s.nodes[1]);

    // The other nodes' clients keep chatting.
    b.send(&format!(
        "<message to='{carol}' type='chat' id='m3'><body>still-here</body></message>"
    ))
    .await;
    c.expect("still-here", |e| is_message_with(e, "still-here"))
        .await;

    // Carol sees alice/a3 go: its node died with it.
    c.expect("alice/a3 unavailable", |e| {
        e.name() == "presence"
            && e.attr("from") == Some(a3_jid.as_str())
            && e.attr("type") == Some("unavailable")
    })
    .await;

    // Everything the server acknowledged to bob reached alice: delivered to
    // a1 or a2 live, or in her archive.
    let acked = b.server_handled().await as usize;
    let mut archive = archived_bodies(&mut a1).await;
    for cl in [&mut a1, &mut a2] {
        cl.collect_for(Duration::from_secs(1)).await;
        for t in &sent {
            if cl.held_position(|e| is_message_with(e, t)).is_some() {
                archive.push(t.clone());
            }
        }
    }
    // h counts what bob sent since enabling: the 40 messages to alice,
    // then the one to carol.
    let delivered: Vec<&String> = sent.iter().filter(|t| archive.contains(t)).collect();
    assert!(
        acked <= sent.len() + 1,
        "h={acked} but only {} stanzas were sent",
        sent.len() + 1
    );
    assert!(
        acked >= 20,
        "h={acked}: not even the messages sent before the kill were acknowledged"
    );
    for t in sent.iter().take(acked) {
        assert!(
            archive.contains(t),
            "acknowledged message {t} lost (h={acked}); arrived: {delivered:?}"
        );
    }

    // The room moved and the account rejoined by itself: bob's messages
    // reach alice's remaining sessions again, with no client doing anything.
    let (text, n) = room_carries(&mut b, &mut a1, &room, "after", || {
        format!("n1:\n{}\nn2:\n{}", n1.log_text(), n2.log_text())
    })
    .await;
    a2.expect_groupchat(&text).await;
    {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "cluster: h={acked} of {} sent; {} of them found at alice; room back after {n} tries",
            sent.len() + 1,
            delivered.len()
        );
    }
    let status = n1.roost(&["cluster", "status"]);
    assert!(!status.contains("\nn3 "), "n3 is gone: {status}");
    assert!(
        status.contains(&room),
        "the room runs on a live node: {status}"
    );

    // Alice's account answers from its new owner: a message to her bare JID
    // from carol reaches both remaining sessions' node.
    c.send(&format!(
        "<message to='{alice}/a1' type='chat' id='m4'><body>welcome-back</body></message>"
    ))
    .await;
    a1.expect("welcome-back", |e| is_message_with(e, "welcome-back"))
        .await;

    // Draining n2 for an upgrade: its clients are asked to reconnect, new
    // ones are turned away, and what it owned moves to n1.
    let said = n1.roost(&["cluster", "drain", "n2"]);
    assert!(said.contains("n2 is draining"), "{said}");
    assert!(c.conn.stream_error().await.contains("system-shutdown"));
    assert!(a2.conn.stream_error().await.contains("system-shutdown"));
    let mut refused = roost_testkit::client::Conn::connect(n2.addr, false)
        .await
        .expect("tcp");
    refused
        .send("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
        .await;
    assert!(refused.stream_error().await.contains("system-shutdown"));
    let status = n1.roost(&["cluster", "status"]);
    assert!(status.contains("draining"), "{status}");
    let mut c = login(n1, local(&carol), "c").await;
    c.send(&format!(
        "<message to='{alice}' type='chat' id='m5'><body>after-drain</body></message>"
    ))
    .await;
    a1.expect("after-drain", |e| is_message_with(e, "after-drain"))
        .await;
    b.say(&room, "room-after-drain").await;
    a1.expect_groupchat("room-after-drain").await;
    let status = n1.roost(&["cluster", "status"]);
    let n2_line = status
        .lines()
        .find(|l| l.starts_with("n2 "))
        .unwrap_or_default()
        .to_string();
    assert!(n2_line.contains("draining"), "{status}");
    assert!(
        !status.contains("rooms on n2"),
        "n2 still runs rooms: {status}"
    );
    // n3 comes back under its name: it takes its share of accounts and
    // rooms back (the room and alice's account are its own again by the
    // hash), and everything keeps working through the move.
    s.nodes[2].start().await;
    let (n1, _n2, n3) = (&s.nodes[0], &s.nodes[1], &s.nodes[2]);
    let mut a3 = login(n3, local(&alice), "a3").await;
    room_carries(&mut b, &mut a1, &room, "back", || {
        format!("n3:\n{}", n3.log_text())
    })
    .await;
    c.send(&format!(
        "<message to='{alice}/a3' type='chat' id='m6'><body>hello-n3</body></message>"
    ))
    .await;
    a3.expect("hello-n3", |e| is_message_with(e, "hello-n3"))
        .await;
    let status = n1.roost(&["cluster", "status"]);
    let n3_line = status
        .lines()
        .find(|l| l.starts_with("n3 "))
        .unwrap_or_default()
        .to_string();
    assert!(n3_line.contains("serving"), "{status}");
    let n3_rooms = status
        .lines()
        .find(|l| l.starts_with("rooms on n3:"))
        .unwrap_or_default()
        .to_string();
    assert!(n3_rooms.contains(&room), "the room is n3's again: {status}");

    // n3 dies and is back under the same name before its lease runs out:
    // the others must notice the new process (it has none of the old
    // one's sessions or tasks) and bind their sessions of its accounts
    // again.
    drop(a3);
    s.nodes[2].proc.kill();
    s.nodes[2].start().await;
    let (n1, n2, n3) = (&s.nodes[0], &s.nodes[1], &s.nodes[2]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        let text = format!("restarted-{n}");
        c.send(&format!(
            "<message to='{alice}/a1' type='chat' id='r{n}'><body>{text}</body></message>"
        ))
        .await;
        if a1
            .gets_within(Duration::from_secs(2), |e| is_message_with(e, &text))
            .await
            .is_some()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice/a1 is not reachable after n3's quick restart\nn3:\n{}",
            n3.log_text()
        );
    }
    let mut a3 = login(n3, local(&alice), "a3").await;
    c.send(&format!(
        "<message to='{alice}/a3' type='chat' id='m7'><body>to-new-a3</body></message>"
    ))
    .await;
    a3.expect("to-new-a3", |e| is_message_with(e, "to-new-a3"))
        .await;
    // The room, n3's, started again in the new process; the accounts
    // rejoined it by themselves.
    room_carries(&mut b, &mut a1, &room, "after-restart", || {
        format!("n3:\n{}", n3.log_text())
    })
    .await;

    // Nothing went wrong inside the nodes.
    for n in [n1, n2, n3] {
        let log = n.log_text();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
        assert!(
            errors.is_empty(),
            "{} logged errors:\n{}",
            n.name,
            errors.join("\n")
        );
    }
}
