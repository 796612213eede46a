//! Crash safety of the real `roost` binary: a client with XEP-0198 stream
//! management sends chat messages to an offline contact and adds roster
//! items while the server is killed with SIGKILL at a random moment; the
//! server restarts on the same data folder, and then every message the
//! server acknowledged (`<a h>`) must reach the contact from offline
//! storage exactly once, every roster change that got its result must be
//! there, and the SQLite database must pass `PRAGMA integrity_check`.
//!
//! Rounds: `CRASH_ROUNDS` (default 8). The binary: `ROOST_BIN`, else the
//! `roost` beside this test's own executable (`cargo build` first; the
//! test command builds it before the tests).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::{Client, Login};

fn roost_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ROOST_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/crash_safety-… -> target/<profile>/roost
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("roost"))
        .expect("target folder");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p roost-server --bin roost` first or set ROOST_BIN",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

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
                 https = \"\"\nproxy65 = \"\"\n\n[muc]\nenabled = false\n",
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

/// What the client sent after enabling stream management, in order.
#[derive(Debug, Clone)]
enum Sent {
    Message(String),
    Roster(String),
}

/// Send until the connection dies; returns what was sent, how many the
/// server acknowledged (`h`) and the roster items whose result arrived.
async fn send_until_killed(c: &mut Client, round: usize) -> (Vec<Sent>, u32, Vec<String>) {
    let mut sent = Vec::new();
    let mut acked = 0u32;
    let mut roster_ok = Vec::new();
    let mut pending_roster: HashMap<String, String> = HashMap::new();
    for n in 0.. {
        let stanza = if n % 7 == 3 {
            let contact = format!("c{round}-{n}@example.org");
            let id = format!("r{round}-{n}");
            pending_roster.insert(id.clone(), contact.clone());
            sent.push(Sent::Roster(contact.clone()));
            format!(
                "<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='{contact}'/></query></iq>"
            )
        } else {
            let label = format!("m{round}-{n}");
            sent.push(Sent::Message(label.clone()));
            format!(
                "<message to='bob@localhost' type='chat' id='{label}'><body>{label}</body></message>"
            )
        };
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
                        acked = acked.max(h);
                    }
                } else if e.attr("type") == Some("result") {
                    if let Some(contact) = e.attr("id").and_then(|id| pending_roster.remove(id)) {
                        roster_ok.push(contact);
                    }
                }
            }
            true
        };
        let outcome = tokio::time::timeout(Duration::from_secs(2), alive).await;
        if !matches!(outcome, Ok(true)) || c.conn.closed || n > 20_000 {
            break;
        }
    }
    (sent, acked, roster_ok)
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
    let mut delivered_before: HashMap<String, usize> = HashMap::new();
    let mut roster_expected: Vec<String> = Vec::new();
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
        let _ = killer.await;
        let (sent, acked, roster_ok) = match sender.await {
            Ok(r) => r,
            Err(e) => panic!("sender task failed: {e}"),
        };
        s.kill();
        assert_eq!(s.integrity_check(), "ok", "round {round}: SQLite");
        let acked_messages: Vec<String> = sent
            .iter()
            .take(acked as usize)
            .filter_map(|x| match x {
                Sent::Message(l) => Some(l.clone()),
                Sent::Roster(_) => None,
            })
            .collect();
        // Roster items the server answered, and those it acknowledged.
        roster_expected.extend(roster_ok);
        roster_expected.extend(sent.iter().take(acked as usize).filter_map(|x| match x {
            Sent::Roster(c) => Some(c.clone()),
            Sent::Message(_) => None,
        }));
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
        let mut alice = login(&s, "alice", "check").await;
        let roster = alice.roster().await;
        let q = roster
            .get_child("query", "jabber:iq:roster")
            .cloned()
            .unwrap_or_else(|| Element::bare("query", "jabber:iq:roster"));
        let have: Vec<&str> = q.children().filter_map(|i| i.attr("jid")).collect();
        for c in &roster_expected {
            assert!(
                have.contains(&c.as_str()),
                "round {round}: roster item {c} lost"
            );
        }
        bob.close().await;
        alice.close().await;
        s.kill();
        eprintln!(
            "round {round}: killed after {wait_ms} ms; {} sent, {} acknowledged, {} delivered",
            sent.len(),
            acked,
            got.len()
        );
    }
}

/// A little randomness without another dependency: the clock's nanoseconds.
fn rand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(7)
}
