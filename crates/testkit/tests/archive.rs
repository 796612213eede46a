//! XEP-0313 personal archive over real sockets: messages archived both
//! ways with a stanza-id, queries by with/start/end/ids, RSM paging both
//! ways with flip-page, preferences, and paging through thousands.

use std::time::Duration;

use minidom::Element;
use roost_testkit::{client::body, Client, TestServer};

const MAM: &str = "urn:xmpp:mam:2";
const RSM: &str = "http://jabber.org/protocol/rsm";

fn form(fields: &[(&str, &str)]) -> String {
    let mut f = String::from("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>");
    for (var, value) in fields {
        f.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    f.push_str("</x>");
    f
}

/// Run a query; returns (bodies, ids, fin).
async fn query(c: &mut Client, inner: &str) -> (Vec<String>, Vec<String>, Element) {
    let id = c.new_id();
    c.send(&format!("<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='q-{id}'>{inner}</query></iq>")).await;
    let mut bodies = Vec::new();
    let mut ids = Vec::new();
    loop {
        let e = c.recv().await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            assert_eq!(e.attr("type"), Some("result"), "{}", String::from(&e));
            return (bodies, ids, e.get_child("fin", MAM).expect("fin").clone());
        }
        if let Some(r) = e.get_child("result", MAM) {
            assert_eq!(r.attr("queryid"), Some(format!("q-{id}").as_str()));
            ids.push(r.attr("id").unwrap().to_string());
            let fwd = r.get_child("forwarded", "urn:xmpp:forward:0").unwrap();
            assert!(fwd.has_child("delay", "urn:xmpp:delay"));
            bodies
                .push(body(fwd.get_child("message", "jabber:client").unwrap()).unwrap_or_default());
        }
    }
}

fn rsm(fin: &Element, name: &str) -> Option<String> {
    fin.get_child("set", RSM)?
        .get_child(name, RSM)
        .map(|e| e.text())
}

async fn pair(s: &TestServer) -> (Client, Client) {
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    a.available().await;
    b.available().await;
    (a, b)
}

#[tokio::test]
async fn messages_are_archived_both_ways_and_inbound_ones_get_a_stanza_id() {
    let s = TestServer::start().await;
    let (mut a, mut b) = pair(&s).await;
    a.send("<message to='bob@localhost' type='chat'><body>hello</body></message>")
        .await;
    let m = b.expect("message", |e| e.name() == "message").await;
    let sid = m
        .get_child("stanza-id", "urn:xmpp:sid:0")
        .expect("stanza-id");
    assert_eq!(sid.attr("by"), Some("bob@localhost"));
    b.send("<message to='alice@localhost/home' type='chat'><body>hi back</body></message>")
        .await;
    a.expect("reply", |e| e.name() == "message").await;
    let (bodies, ids, fin) = query(&mut b, "").await;
    assert_eq!(bodies, ["hello", "hi back"]);
    assert_eq!(ids[0], sid.attr("id").unwrap());
    assert_eq!(fin.attr("complete"), Some("true"));
    let (bodies, _, _) = query(&mut a, "").await;
    assert_eq!(bodies, ["hello", "hi back"]);
}

#[tokio::test]
async fn spoofed_stanza_ids_are_replaced() {
    let s = TestServer::start().await;
    let (mut a, mut b) = pair(&s).await;
    a.send("<message to='bob@localhost' type='chat'><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' id='fake' by='bob@localhost'/></message>").await;
    let m = b.expect("message", |e| e.name() == "message").await;
    let ids: Vec<&str> = m
        .children()
        .filter(|c| c.is("stanza-id", "urn:xmpp:sid:0"))
        .filter_map(|c| c.attr("id"))
        .collect();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], "fake");
}

#[tokio::test]
async fn queries_filter_by_with_and_ids_and_unknown_ids_are_item_not_found() {
    let s = TestServer::start().await;
    s.user("carol").await;
    let (mut a, mut b) = pair(&s).await;
    let mut c = s.login("carol", "x").await;
    c.available().await;
    a.send("<message to='bob@localhost' type='chat'><body>to bob</body></message>")
        .await;
    a.send("<message to='carol@localhost' type='chat'><body>to carol</body></message>")
        .await;
    b.expect("m", |e| e.name() == "message").await;
    c.expect("m", |e| e.name() == "message").await;
    let (bodies, ids, _) = query(&mut a, &form(&[("with", "carol@localhost")])).await;
    assert_eq!(bodies, ["to carol"]);
    let (bodies, _, _) = query(&mut a, &form(&[("ids", &ids[0])])).await;
    assert_eq!(bodies, ["to carol"]);
    let r = a
        .iq("set", None, "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set></query>")
        .await;
    assert_eq!(r.attr("type"), Some("error"));
    assert!(r
        .get_child("error", "jabber:client")
        .unwrap()
        .has_child("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas"));
}

#[tokio::test]
async fn paging_over_thousands_of_messages_works_both_ways() {
    let s = TestServer::start().await;
    let (mut a, mut b) = pair(&s).await;
    const N: usize = 2000;
    let mut batch = String::new();
    for i in 0..N {
        batch.push_str(&format!(
            "<message to='bob@localhost' type='chat'><body>{i}</body></message>"
        ));
        if batch.len() > 32_000 {
            a.send(&batch).await;
            batch.clear();
        }
    }
    a.send(&batch).await;
    // Wait until bob has them all, which means alice's account archived them.
    for _ in 0..N {
        b.expect("m", |e| e.name() == "message").await;
    }
    // Forward through everything in pages of 250.
    let mut seen = 0;
    let mut after: Option<String> = None;
    loop {
        let set = match &after {
            Some(id) => format!("<set xmlns='{RSM}'><max>250</max><after>{id}</after></set>"),
            None => format!("<set xmlns='{RSM}'><max>250</max></set>"),
        };
        let (bodies, _, fin) = query(&mut a, &set).await;
        for (k, body) in bodies.iter().enumerate() {
            assert_eq!(body, &(seen + k).to_string());
        }
        seen += bodies.len();
        after = rsm(&fin, "last");
        if fin.attr("complete") == Some("true") {
            break;
        }
    }
    assert_eq!(seen, N);
    // The last page, then the one before it.
    let (bodies, _, fin) = query(
        &mut a,
        &format!("<set xmlns='{RSM}'><max>10</max><before/></set>"),
    )
    .await;
    assert_eq!(bodies.first().map(String::as_str), Some("1990"));
    assert_eq!(bodies.last().map(String::as_str), Some("1999"));
    let first = rsm(&fin, "first").unwrap();
    let (bodies, _, _) = query(
        &mut a,
        &format!("<set xmlns='{RSM}'><max>10</max><before>{first}</before></set>"),
    )
    .await;
    assert_eq!(bodies.first().map(String::as_str), Some("1980"));
    // flip-page reverses the order within the page.
    let (bodies, _, _) = query(
        &mut a,
        &format!("<set xmlns='{RSM}'><max>3</max><before/></set><flip-page/>"),
    )
    .await;
    assert_eq!(bodies, ["1999", "1998", "1997"]);
}

#[tokio::test]
async fn time_window_queries_return_only_that_window() {
    let s = TestServer::start().await;
    let (mut a, mut b) = pair(&s).await;
    a.send("<message to='bob@localhost' type='chat'><body>early</body></message>")
        .await;
    b.expect("m", |e| e.name() == "message").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, ids, _) = query(&mut a, "").await;
    let meta = a
        .iq("get", None, "<metadata xmlns='urn:xmpp:mam:2'/>")
        .await;
    let start = meta
        .get_child("metadata", MAM)
        .unwrap()
        .get_child("start", MAM)
        .unwrap();
    assert_eq!(start.attr("id"), Some(ids[0].as_str()));
    let t = start.attr("timestamp").unwrap().to_string();
    a.send("<message to='bob@localhost' type='chat'><body>late</body></message>")
        .await;
    b.expect("m", |e| e.name() == "message").await;
    let (bodies, _, _) = query(&mut a, &form(&[("end", &t)])).await;
    assert_eq!(bodies, ["early"]);
    let (bodies, _, _) = query(&mut a, &form(&[("start", "2001-01-01T00:00:00Z")])).await;
    assert_eq!(bodies, ["early", "late"]);
}

#[tokio::test]
async fn preference_never_stops_archiving_for_that_contact() {
    let s = TestServer::start().await;
    let (mut a, mut b) = pair(&s).await;
    let r = a
        .iq("set", None, "<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never><jid>bob@localhost</jid></never></prefs>")
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    a.send("<message to='bob@localhost' type='chat'><body>off the record</body></message>")
        .await;
    b.expect("m", |e| e.name() == "message").await;
    let (bodies, _, _) = query(&mut a, "").await;
    assert!(bodies.is_empty(), "{bodies:?}");
    let p = a.iq("get", None, "<prefs xmlns='urn:xmpp:mam:2'/>").await;
    let never = p
        .get_child("prefs", MAM)
        .unwrap()
        .get_child("never", MAM)
        .unwrap();
    assert_eq!(never.children().next().unwrap().text(), "bob@localhost");
}

#[tokio::test]
async fn messages_received_while_offline_are_in_the_archive() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    a.send("<message to='bob@localhost' type='chat'><body>while away</body></message>")
        .await;
    a.iq("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = s.login("bob", "phone").await;
    let (bodies, _, _) = query(&mut b, "").await;
    assert_eq!(bodies, ["while away"]);
}

#[tokio::test]
async fn account_disco_advertises_mam() {
    let s = TestServer::start().await;
    let (mut a, _b) = pair(&s).await;
    let r = a
        .iq(
            "get",
            Some("alice@localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let features: Vec<String> = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var").map(str::to_string))
        .collect();
    assert!(features.contains(&MAM.to_string()), "{features:?}");
}

#[tokio::test]
async fn preference_jids_are_normalised_and_malformed_ones_refused() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = a
        .iq(
            "set",
            None,
            "<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>Romeo@Montague.LIT</jid></always><never><jid>TYBALT@capulet.lit/Home</jid></never></prefs>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let jids = |r: &Element, list: &str| -> Vec<String> {
        r.get_child("prefs", MAM)
            .and_then(|p| p.get_child(list, MAM))
            .map(|l| l.children().map(|j| j.text()).collect())
            .unwrap_or_default()
    };
    assert_eq!(jids(&r, "always"), vec!["romeo@montague.lit"]);
    assert_eq!(jids(&r, "never"), vec!["tybalt@capulet.lit/Home"]);
    let got = a.iq("get", None, "<prefs xmlns='urn:xmpp:mam:2'/>").await;
    assert_eq!(jids(&got, "always"), vec!["romeo@montague.lit"]);
    let bad = a
        .iq(
            "set",
            None,
            "<prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>a@b@c</jid></always></prefs>",
        )
        .await;
    assert_eq!(bad.attr("type"), Some("error"));
    assert!(bad
        .get_child("error", "jabber:client")
        .is_some_and(|e| e.has_child("jid-malformed", "urn:ietf:params:xml:ns:xmpp-stanzas")));
}
