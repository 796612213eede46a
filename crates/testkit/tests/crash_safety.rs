//! Crash safety of the real `roost` binary: a client with XEP-0198 stream
//! management sends chat messages to an offline contact, adds roster
//! items, asks for a subscription, publishes a PEP item and XEP-0402
//! bookmarks and makes accounts members of its persistent room, while a
//! second client registers accounts in-band (XEP-0077) and the server is
//! killed with SIGKILL at a random moment. The server restarts on the same
//! data folder, and then every message the server acknowledged (`<a h>`)
//! must reach the contact from offline storage exactly once, and every
//! change that got its result must be there: roster items, the pending
//! subscription, the PEP item (this one or a later one), bookmarks, room
//! configuration and affiliations, registered accounts (they log in). The
//! SQLite database must pass `PRAGMA integrity_check`. The archive's group
//! commit (README "Reliability") is the one window; nothing here waits on it.
//!
//! Rounds: `CRASH_ROUNDS` (default 8). The binary: `ROOST_BIN`, else the
//! `roost` beside this test's own executable (`cargo build` first; the
//! test command builds it before the tests).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use minidom::Element;
use roost_testkit::binary::{free_port, roost_bin};
use roost_testkit::client::body;
use roost_testkit::{Client, Login};

struct Server {
    bin: PathBuf,
    config: PathBuf,
    data: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Server {
    fn new(dir: &Path) -> Server {
        let port = free_port();
        let data = dir.join("data");
        let config = dir.join("roost.toml");
        std::fs::write(
            &config,
            format!(
                "domain = \"localhost\"\ndata_dir = \"{}\"\nlog = \"warn\"\n\n\
                 [listen]\nc2s = \"127.0.0.1:{port}\"\nc2s_tls = \"\"\nhttp = \"\"\n\
                 https = \"\"\nproxy65 = \"\"\n\n[account_muc]\nenabled = false\n",
                data.display()
            ),
        )
        .expect("config");
        Server {
            bin: roost_bin(),
            config,
            data,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
        }
    }

    fn add_user(&self, jid: &str, password: &str) {
        let ok = Command::new(&self.bin)
            .args(["user", "add", jid, "--password", password, "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .status()
            .expect("roost user add");
        assert!(ok.success(), "roost user add {jid}");
    }

    async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .expect("log file");
        let child = Command::new(&self.bin)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("roost serve");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not start listening within 5 s");
    }

    /// SIGKILL, as a crash or a power cut would (for the process).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    fn integrity_check(&self) -> String {
        let db = rusqlite::Connection::open(self.data.join("roost.sqlite")).expect("open db");
        db.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .expect("integrity_check")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn login(s: &Server, user: &str, resource: &str) -> Client {
    Client::login(
        s.addr,
        Login::new(user, &format!("pw-{user}"))
            .resource(resource)
            .domain("localhost"),
    )
    .await
    .expect("login")
}

const ROOM: &str = "crash@conference.localhost";
const PEP_NODE: &str = "urn:example:crash";
const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";

/// What the client sent after enabling stream management, in order.
#[derive(Debug, Clone)]
enum Sent {
    Message(String),
    /// An IQ; the change it asks for must survive once its result came.
    Change(Change),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Change {
    Roster(String),
    Subscription(String),
    Pep(String),
    Bookmark(String),
    Member(String),
}

/// What one round asked for and what the server confirmed.
struct Round {
    sent: Vec<Sent>,
    acked: u32,
    confirmed: Vec<Change>,
}

/// The stanza for the `n`th thing sent in `round`.
fn next_stanza(round: usize, n: usize) -> (String, Sent, Option<String>) {
    let id = format!("i{round}-{n}");
    let (xml, change) = match n % 13 {
        3 | 10 => {
            let c = format!("c{round}-{n}@example.org");
            (
                format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='{c}'/></query></iq>"),
                Change::Roster(c),
            )
        }
        5 => {
            let v = format!("v{round}-{n}");
            (
                format!("<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{PEP_NODE}'><item id='current'><state xmlns='{PEP_NODE}'>{v}</state></item></publish></pubsub></iq>"),
                Change::Pep(v),
            )
        }
        7 => {
            let room = format!("b{round}-{n}@conference.example.org");
            (
                format!("<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{BOOKMARKS}'><item id='{room}'><conference xmlns='{BOOKMARKS}' name='r' autojoin='false'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub></iq>"),
                Change::Bookmark(room),
            )
        }
        9 => {
            let m = format!("m{round}-{n}@example.org");
            (
                format!("<iq type='set' id='{id}' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='{m}'/></query></iq>"),
                Change::Member(m),
            )
        }
        12 => {
            // RFC 6121 §3.1.2: the request is remembered as `ask`.
            let c = format!("s{round}-{n}@example.org");
            (
                format!("<presence type='subscribe' to='{c}'/>"),
                Change::Subscription(c),
            )
        }
        _ => {
            let label = format!("m{round}-{n}");
            let xml = format!(
                "<message to='bob@localhost' type='chat' id='{label}'><body>{label}</body></message>"
            );
            return (xml, Sent::Message(label), None);
        }
    };
    let waits = !matches!(change, Change::Subscription(_));
    (xml, Sent::Change(change), waits.then_some(id))
}

/// Send until the connection dies.
async fn send_until_killed(c: &mut Client, round: usize) -> Round {
    let mut r = Round {
        sent: Vec::new(),
        acked: 0,
        confirmed: Vec::new(),
    };
    let mut pending: HashMap<String, Change> = HashMap::new();
    for n in 0.. {
        let (stanza, sent, id) = next_stanza(round, n);
        if let (Some(id), Sent::Change(ch)) = (&id, &sent) {
            pending.insert(id.clone(), ch.clone());
        }
        r.sent.push(sent);
        let alive = async {
            if !c.conn.try_send(&stanza).await
                || (n % 5 == 4 && !c.conn.try_send("<r xmlns='urn:xmpp:sm:3'/>").await)
            {
                return false;
            }
            // Read what came back; after an `<r/>`, wait a little for the
            // `<a/>` (it waits for the offline store's commit).
            let wait = if n % 5 == 4 { 60 } else { 2 };
            while let Some(e) = c
                .gets_within(Duration::from_millis(wait), |e| {
                    e.name() == "a" || e.name() == "iq"
                })
                .await
            {
                if e.name() == "a" {
                    if let Some(h) = e.attr("h").and_then(|h| h.parse().ok()) {
                        r.acked = r.acked.max(h);
                    }
                } else if let Some(ch) = e.attr("id").and_then(|id| pending.remove(id)) {
                    assert_eq!(e.attr("type"), Some("result"), "{ch:?} refused: {e:?}");
                    r.confirmed.push(ch);
                }
            }
            true
        };
        let outcome = tokio::time::timeout(Duration::from_secs(2), alive).await;
        if !matches!(outcome, Ok(true)) || c.conn.closed || n > 20_000 {
            break;
        }
    }
    r
}

/// Register accounts in-band until the server dies; those that got their
/// result.
async fn register_until_killed(addr: SocketAddr, round: usize) -> Vec<String> {
    let mut done = Vec::new();
    for k in 0..10_000 {
        let user = format!("reg{round}x{k}");
        let name = user.clone();
        // In a task of its own: the client helpers panic when the server
        // dies in the middle of a handshake, which ends the round here.
        let attempt = tokio::spawn(async move {
            let user = name;
            let mut c = roost_testkit::Conn::connect(addr, false).await.ok()?;
            c.open_stream().await;
            c.starttls().await;
            c.open_stream().await;
            c.try_send(&format!(
                "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{user}</username><password>pw-{user}</password></query></iq>"
            ))
            .await
            .then_some(())?;
            c.next_element().await
        });
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(Some(e))) if e.attr("type") == Some("result") => done.push(user),
            Ok(Ok(Some(e))) => panic!("registration of {user} refused: {e:?}"),
            _ => break,
        }
    }
    done
}

/// Every element under `e`, `e` included, depth first.
fn descendants(e: &Element) -> impl Iterator<Item = &Element> {
    let mut stack = vec![e];
    std::iter::from_fn(move || {
        let next = stack.pop()?;
        stack.extend(next.children());
        Some(next)
    })
}

/// Create the persistent room the rounds add members to.
async fn create_room(s: &Server) {
    let mut alice = login(s, "alice", "owner").await;
    alice
        .send(&format!(
            "<presence to='{ROOM}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
    alice
        .expect("self-presence", |e| {
            e.name() == "presence" && e.attr("from") == Some(&format!("{ROOM}/alice"))
        })
        .await;
    let r = alice
        .iq(
            "set",
            Some(ROOM),
            "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_roomname'><value>Crash room</value></field><field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    alice.close().await;
}

/// Everything confirmed so far is there.
async fn check_changes(s: &Server, round: usize, confirmed: &[Change], pep_after: &[String]) {
    let mut alice = login(s, "alice", "check").await;
    let roster = alice.roster().await;
    let q = roster
        .get_child("query", "jabber:iq:roster")
        .cloned()
        .unwrap_or_else(|| Element::bare("query", "jabber:iq:roster"));
    let item = |jid: &str| q.children().find(|i| i.attr("jid") == Some(jid)).cloned();
    let bookmarks = alice
        .iq("get", None, &format!("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{BOOKMARKS}'/></pubsub>"))
        .await;
    let marked: Vec<String> = descendants(&bookmarks)
        .filter(|e| e.name() == "item")
        .filter_map(|e| e.attr("id").map(str::to_string))
        .collect();
    let members = alice
        .iq("get", Some(ROOM), "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query>")
        .await;
    assert_eq!(
        members.attr("type"),
        Some("result"),
        "round {round}: room lost: {members:?}"
    );
    let member_jids: Vec<String> = descendants(&members)
        .filter(|e| e.name() == "item")
        .filter_map(|e| e.attr("jid").map(str::to_string))
        .collect();
    let info = alice
        .iq(
            "get",
            Some(ROOM),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert!(
        descendants(&info).any(|e| e.name() == "identity" && e.attr("name") == Some("Crash room")),
        "round {round}: room configuration lost: {info:?}"
    );
    for ch in confirmed {
        match ch {
            Change::Roster(c) => assert!(item(c).is_some(), "round {round}: roster item {c} lost"),
            Change::Subscription(c) => {
                let i =
                    item(c).unwrap_or_else(|| panic!("round {round}: subscription to {c} lost"));
                assert_eq!(i.attr("ask"), Some("subscribe"), "round {round}: {i:?}");
            }
            Change::Bookmark(b) => {
                assert!(marked.contains(b), "round {round}: bookmark {b} lost")
            }
            Change::Member(m) => {
                assert!(member_jids.contains(m), "round {round}: member {m} lost")
            }
            Change::Pep(_) => {}
        }
    }
    if !pep_after.is_empty() {
        let items = alice
            .iq("get", None, &format!("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{PEP_NODE}'/></pubsub>"))
            .await;
        let value = descendants(&items)
            .find(|e| e.name() == "state")
            .map(|e| e.text())
            .unwrap_or_default();
        assert!(
            pep_after.contains(&value),
            "round {round}: PEP item {value:?} is older than the last confirmed one ({:?})",
            pep_after.first()
        );
    }
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_data_survives_sigkill_at_random_moments() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Server::new(dir.path());
    std::fs::create_dir_all(&s.data).expect("data dir");
    s.add_user("alice@localhost", "pw-alice");
    s.add_user("bob@localhost", "pw-bob");
    s.start().await;
    create_room(&s).await;
    s.kill();
    let mut delivered_before: HashMap<String, usize> = HashMap::new();
    let mut confirmed_all: Vec<Change> = Vec::new();
    let mut registered: Vec<String> = Vec::new();
    // The PEP values that may be stored: the last confirmed and later ones.
    let mut pep_after: Vec<String> = Vec::new();
    for round in 0..rounds {
        s.start().await;
        let mut alice = login(&s, "alice", "sender").await;
        alice.enable_sm().await;
        // The kill comes at a random moment of the burst.
        let wait_ms = 30 + (rand_u64() % 600);
        let pid = s.pid();
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        let sender = tokio::spawn(async move {
            let r = send_until_killed(&mut alice, round).await;
            drop(alice);
            r
        });
        let registrar = tokio::spawn(register_until_killed(s.addr, round));
        let _ = killer.await;
        let r = match sender.await {
            Ok(r) => r,
            Err(e) => panic!("sender task failed: {e}"),
        };
        let regs = registrar.await.expect("registrar task");
        s.kill();
        assert_eq!(s.integrity_check(), "ok", "round {round}: SQLite");
        let acked_messages: Vec<String> = r
            .sent
            .iter()
            .take(r.acked as usize)
            .filter_map(|x| match x {
                Sent::Message(l) => Some(l.clone()),
                Sent::Change(_) => None,
            })
            .collect();
        // Changes the server answered; roster items and subscriptions it
        // acknowledged are handled by the account in order, so they count
        // too.
        confirmed_all.extend(r.confirmed.iter().cloned());
        confirmed_all.extend(
            r.sent
                .iter()
                .take(r.acked as usize)
                .filter_map(|x| match x {
                    Sent::Change(c @ (Change::Roster(_) | Change::Subscription(_))) => {
                        Some(c.clone())
                    }
                    _ => None,
                }),
        );
        let published: Vec<String> = r
            .sent
            .iter()
            .filter_map(|x| match x {
                Sent::Change(Change::Pep(v)) => Some(v.clone()),
                _ => None,
            })
            .collect();
        if let Some(last) = r.confirmed.iter().rev().find_map(|c| match c {
            Change::Pep(v) => Some(v.clone()),
            _ => None,
        }) {
            let from = published.iter().position(|v| *v == last).unwrap_or(0);
            pep_after = published[from..].to_vec();
        } else if !pep_after.is_empty() {
            // Nothing confirmed this round: the old value or any new one.
            pep_after.extend(published);
        }
        registered.extend(regs.iter().cloned());
        // Back up on the same data.
        s.start().await;
        let mut bob = login(&s, "bob", "reader").await;
        bob.send("<presence/>").await;
        let mut got: Vec<String> = Vec::new();
        while let Some(m) = bob
            .gets_within(Duration::from_millis(700), |e| {
                e.name() == "message" && body(e).is_some()
            })
            .await
        {
            got.push(body(&m).unwrap_or_default());
        }
        for label in &acked_messages {
            assert!(
                got.contains(label),
                "round {round}: acknowledged {label} was lost ({} acked, {} delivered)",
                acked_messages.len(),
                got.len()
            );
        }
        for label in &got {
            let seen = delivered_before.entry(label.clone()).or_insert(0);
            *seen += 1;
            assert_eq!(*seen, 1, "round {round}: {label} delivered twice");
        }
        check_changes(&s, round, &confirmed_all, &pep_after).await;
        for user in &regs {
            login(&s, user, "check").await.close().await;
        }
        bob.close().await;
        s.kill();
        eprintln!(
            "round {round}: killed after {wait_ms} ms; {} sent, {} acknowledged, {} delivered, {} changes and {} registrations confirmed",
            r.sent.len(),
            r.acked,
            got.len(),
            r.confirmed.len(),
            regs.len()
        );
    }
    // Accounts registered in earlier rounds still log in.
    s.start().await;
    for user in registered.iter().step_by(7) {
        login(&s, user, "final").await.close().await;
    }
    s.kill();
}

/// A little randomness without another dependency: the clock's nanoseconds.
fn rand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(7)
}
