//! The `server_stanza` target: stanza handlers of a running server, in
//! this process (RFC 6120 §8 routing, RFC 6121, and every service a stanza
//! can reach: accounts, MUC, PEP, pubsub, upload, the server's own IQs).
//! One server and one logged-in client live for the whole fuzzing run;
//! each input that parses as a stanza is sent by the client, followed by a
//! ping, and the ping must be answered: the server neither died nor hung
//! on the input. An input that makes the server close the stream (as a
//! bad `from` does) costs a new login, which must work too.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use minidom::Element;
use roost_proto::ElementExt;
use roost_testkit::{Client, TestServer};

struct Harness {
    rt: tokio::runtime::Runtime,
    server: TestServer,
    client: Option<Client>,
    pings: u64,
}

static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();

/// How long one input may keep the server from answering the next ping.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn harness() -> &'static Mutex<Harness> {
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(async {
            let s = TestServer::start_with(|c| {
                // Lower limits, so that inputs reach them quickly.
                c.limits.max_roster_items = 50;
                c.limits.max_offline_messages = 50;
                c.muc.max_rooms_per_user = 10;
            })
            .await;
            s.user("fuzz").await;
            s.user("peer").await;
            s
        });
        Mutex::new(Harness {
            rt,
            server,
            client: None,
            pings: 0,
        })
    })
}

/// Send `stanza` from a logged-in session and check the server answers a
/// ping after it.
pub fn send(stanza: &Element) {
    let mut h = harness().lock().unwrap_or_else(|p| p.into_inner());
    let h = &mut *h;
    h.pings += 1;
    let ping = format!("fz{}", h.pings);
    let xml = stanza.to_xml();
    let server = &h.server;
    let client = &mut h.client;
    h.rt.block_on(async {
        if client.as_ref().is_none_or(|c| c.conn.closed) {
            let mut c = server.login("fuzz", "r").await;
            c.send("<presence/>").await;
            *client = Some(c);
        }
        let Some(c) = client.as_mut() else { return };
        if !c.conn.try_send(&xml).await {
            *client = None;
            return;
        }
        let probe = format!("<iq type='get' id='{ping}'><ping xmlns='urn:xmpp:ping'/></iq>");
        if !c.conn.try_send(&probe).await {
            *client = None;
            return;
        }
        let answered = tokio::time::timeout(ANSWER_WITHIN, async {
            while let Some(e) = c.conn.next_element().await {
                if e.name() == "iq" && e.attr("id") == Some(ping.as_str()) {
                    return true;
                }
            }
            false
        })
        .await;
        match answered {
            Ok(true) => {}
            // The input closed the stream: the next input logs in again.
            Ok(false) => *client = None,
            Err(_) => {
                panic!("the server did not answer a ping within {ANSWER_WITHIN:?} after {xml}")
            }
        }
    });
}
