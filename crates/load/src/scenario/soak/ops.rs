//! The soak's occasional operations, each timed and checked:
//! XEP-0313 archive queries (a lookup by XEP-0359 id of a message the
//! session received, then the last page of the conversation with XEP-0059
//! paging), XEP-0363 uploads (slot over XMPP, PUT and GET over HTTP(S),
//! bytes compared), and short-lived sessions that log in (RFC 6120 SASL and
//! bind, or XEP-0388 SASL2 with XEP-0386 Bind 2), stay a while and log out.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use roost_stream::StreamEvent;
use tokio::time::Instant;

use super::client::{logout, Client, IqError, NS_MAM};
use super::http::{self, Url};
use super::tally::{parse_body, Op};
use super::{Rng, Shared};
use crate::xmpp::{error_condition, escape, Conn};

pub const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";

/// Records `op` or, when the session dropped and resumed meanwhile,
/// `via_resume` (its latency includes the time away).
fn record(shared: &Shared, c: &Client, epoch: u64, op: Op, t: Instant) {
    let op = if shared.epoch(c.idx) != epoch {
        Op::ViaResume
    } else {
        op
    };
    shared
        .tally
        .record(op, t.elapsed().as_micros() as u64, &c.bare);
}

/// The message a XEP-0313 result carries.
fn forwarded(result: &Element) -> Option<&Element> {
    result
        .get_child("forwarded", NS_FORWARD)?
        .children()
        .find(|c| c.name() == "message")
}

fn body_of(msg: &Element) -> Option<String> {
    msg.children()
        .find(|c| c.name() == "body")
        .map(|b| b.text())
}

/// An IQ answer that is not a result, as an error kind and detail.
fn iq_failure(op: Op, who: &str, r: Result<&Element, &IqError>) -> Option<(String, String)> {
    match r {
        Ok(e) if e.attr("type") == Some("result") => None,
        Ok(e) => Some((
            format!("{}:error {}", op.name(), error_condition(e)),
            format!("{who}: {}", String::from(e)),
        )),
        Err(IqError::Timeout) => Some((
            format!("{}:timeout", op.name()),
            format!("{who}: no answer"),
        )),
        Err(IqError::NotConnected) => None,
    }
}

fn mam_form(fields: &str) -> String {
    format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>{fields}</x>"
    )
}

/// Look the last chat message the session received up by its archive
/// id, then fetch the last page of the conversation with its partner.
pub async fn mam(shared: Arc<Shared>, c: Arc<Client>, page: usize) {
    let Some((id, body)) = c.archived() else {
        return;
    };
    let timeout = shared.ctx.target.timeout;
    let who = c.bare.as_str();
    // By id (XEP-0313 §4.1.2 `ids`): exactly that message.
    let qid = c.new_id("q");
    c.expect_results(&qid);
    let epoch = shared.epoch(c.idx);
    let t = Instant::now();
    let form = mam_form(&format!(
        "<field var='ids'><value>{}</value></field>",
        escape(&id)
    ));
    let r = c
        .iq(
            "set",
            None,
            &format!("<query xmlns='{NS_MAM}' queryid='{qid}'>{form}</query>"),
            timeout,
        )
        .await;
    let results = c.take_results(&qid);
    if matches!(r, Err(IqError::NotConnected)) {
        return;
    }
    if let Some((kind, detail)) = iq_failure(Op::MamLookup, who, r.as_ref()) {
        shared.tally.error(&kind, &detail);
        return;
    }
    let ok = results.len() == 1
        && results[0].attr("id") == Some(id.as_str())
        && forwarded(&results[0]).and_then(body_of).as_deref() == Some(body.as_str());
    if !ok {
        shared.tally.error(
            "mam_lookup:mismatch",
            &format!(
                "{who}: archive id {id} gave {} results{}",
                results.len(),
                results
                    .first()
                    .map(|r| format!(", first {}", String::from(r)))
                    .unwrap_or_default()
            ),
        );
        return;
    }
    if !r.as_ref().is_ok_and(|e| e.has_child("fin", NS_MAM)) {
        shared.tally.error(
            "mam_lookup:no_fin",
            &format!("{who}: result without <fin/>"),
        );
        return;
    }
    record(&shared, &c, epoch, Op::MamLookup, t);

    // The last page with the partner (XEP-0059 §2.5 `<before/>`): it
    // holds at least the message just looked up, or newer ones.
    let known_ts = parse_body(&body).map(|(_, _, _, ts)| ts).unwrap_or(0);
    let qid = c.new_id("q");
    c.expect_results(&qid);
    let epoch = shared.epoch(c.idx);
    let t = Instant::now();
    let form = mam_form(&format!(
        "<field var='with'><value>{}</value></field>",
        escape(&c.partner_bare)
    ));
    let r = c
        .iq(
            "set",
            None,
            &format!(
                "<query xmlns='{NS_MAM}' queryid='{qid}'>{form}<set xmlns='{NS_RSM}'><max>{page}</max><before/></set></query>"
            ),
            timeout,
        )
        .await;
    let results = c.take_results(&qid);
    if matches!(r, Err(IqError::NotConnected)) {
        return;
    }
    if let Some((kind, detail)) = iq_failure(Op::MamPage, who, r.as_ref()) {
        shared.tally.error(&kind, &detail);
        return;
    }
    let bodies: Vec<Option<String>> = results
        .iter()
        .map(|r| forwarded(r).and_then(body_of))
        .collect();
    let newest = bodies
        .iter()
        .flatten()
        .filter_map(|b| parse_body(b).map(|(_, _, _, ts)| ts))
        .max()
        .unwrap_or(0);
    let mut ids: Vec<&str> = results.iter().filter_map(|r| r.attr("id")).collect();
    ids.sort_unstable();
    ids.dedup();
    let problem = if results.is_empty() || results.len() > page {
        Some(format!("{} results for a page of {page}", results.len()))
    } else if bodies.iter().any(|b| b.is_none()) {
        Some("a result without a message body".to_string())
    } else if ids.len() != results.len() {
        Some("archive ids repeated within a page".to_string())
    } else if newest < known_ts {
        Some(format!(
            "the last page's newest message (sent at {newest} µs) is older than one received before (sent at {known_ts} µs)"
        ))
    } else if !r.as_ref().is_ok_and(|e| e.has_child("fin", NS_MAM)) {
        Some("result without <fin/>".to_string())
    } else {
        None
    };
    match problem {
        Some(p) => shared
            .tally
            .error("mam_page:mismatch", &format!("{who}: {p}")),
        None => record(&shared, &c, epoch, Op::MamPage, t),
    }
}

/// Bytes of upload number `n` (reproducible, not compressible).
pub fn upload_data(n: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x5eed_0000 ^ n);
    let mut v = Vec::with_capacity(size + 8);
    while v.len() < size {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(size);
    v
}

/// XEP-0363: a slot, the PUT, the GET, and the same bytes back.
pub async fn upload(
    shared: Arc<Shared>,
    c: Arc<Client>,
    service: String,
    n: u64,
    size: usize,
    tls: Arc<rustls::ClientConfig>,
) {
    let timeout = shared.ctx.target.timeout;
    let who = c.bare.as_str();
    let name = format!("soak-{}-{n}.bin", c.idx);
    let ctype = "application/octet-stream";
    let epoch = shared.epoch(c.idx);
    let t = Instant::now();
    let r = c
        .iq(
            "get",
            Some(&service),
            &format!("<request xmlns='{NS_UPLOAD}' filename='{name}' size='{size}' content-type='{ctype}'/>"),
            timeout,
        )
        .await;
    if matches!(r, Err(IqError::NotConnected)) {
        return;
    }
    if let Some((kind, detail)) = iq_failure(Op::UploadSlot, who, r.as_ref()) {
        shared.tally.error(&kind, &detail);
        return;
    }
    let Ok(slot_iq) = r else { return };
    let Some(slot) = slot_iq.get_child("slot", NS_UPLOAD) else {
        shared.tally.error(
            "upload_slot:no_slot",
            &format!("{who}: {}", String::from(&slot_iq)),
        );
        return;
    };
    let put = slot.get_child("put", NS_UPLOAD);
    let get = slot.get_child("get", NS_UPLOAD);
    let (Some(put_url), Some(get_url)) = (
        put.and_then(|p| p.attr("url")),
        get.and_then(|g| g.attr("url")),
    ) else {
        shared.tally.error(
            "upload_slot:no_urls",
            &format!("{who}: {}", String::from(slot)),
        );
        return;
    };
    record(&shared, &c, epoch, Op::UploadSlot, t);
    let (put_url, get_url) = match (Url::parse(put_url), Url::parse(get_url)) {
        (Ok(p), Ok(g)) => (p, g),
        (Err(e), _) | (_, Err(e)) => {
            shared
                .tally
                .error("upload_slot:bad_url", &format!("{who}: {e:#}"));
            return;
        }
    };
    // XEP-0363 §4: the headers the slot asks the PUT to carry.
    let mut headers = vec![("Content-Type".to_string(), ctype.to_string())];
    for h in put.into_iter().flat_map(|p| p.children()) {
        if h.name() == "header" {
            if let Some(name) = h.attr("name") {
                headers.push((name.to_string(), h.text().trim().to_string()));
            }
        }
    }
    let data = upload_data(n, size);
    let t = Instant::now();
    match http::request(&tls, &put_url, "PUT", &headers, &data, timeout).await {
        Ok(resp) if resp.status == 200 || resp.status == 201 => {
            shared
                .tally
                .record(Op::UploadPut, t.elapsed().as_micros() as u64, who);
        }
        Ok(resp) => {
            shared.tally.error(
                &format!("upload_put:status {}", resp.status),
                &format!(
                    "{who}: {} {}",
                    put_url.target,
                    String::from_utf8_lossy(&resp.body).trim()
                ),
            );
            return;
        }
        Err(e) => {
            shared
                .tally
                .error("upload_put:failed", &format!("{who}: {e:#}"));
            return;
        }
    }
    let t = Instant::now();
    match http::request(&tls, &get_url, "GET", &[], &[], timeout).await {
        Ok(resp) if resp.status == 200 => {
            if resp.body != data {
                shared.tally.error(
                    "upload_get:different_bytes",
                    &format!(
                        "{who}: {} bytes back for {} sent ({})",
                        resp.body.len(),
                        data.len(),
                        get_url.target
                    ),
                );
            } else if resp.header("content-type") != Some(ctype) {
                shared.tally.error(
                    "upload_get:content_type",
                    &format!("{who}: {:?}", resp.header("content-type")),
                );
            } else {
                shared
                    .tally
                    .record(Op::UploadGet, t.elapsed().as_micros() as u64, who);
            }
        }
        Ok(resp) => shared.tally.error(
            &format!("upload_get:status {}", resp.status),
            &format!("{who}: {}", get_url.target),
        ),
        Err(e) => shared
            .tally
            .error("upload_get:failed", &format!("{who}: {e:#}")),
    }
}

/// A short session: log in (timed), stay `hold`, log out (timed).
pub async fn churn(shared: Arc<Shared>, account: u64, n: u64, sasl2: bool, hold: Duration) {
    let ctx = &shared.ctx;
    let who = ctx.bare(account);
    let t = Instant::now();
    let login = async {
        let mut c = if sasl2 {
            Conn::sasl2_login(
                &ctx.target,
                &ctx.user(account),
                &ctx.password(account),
                "<bind xmlns='urn:xmpp:bind:0'><tag>churn</tag></bind>",
            )
            .await?
            .0
        } else {
            Conn::login(
                &ctx.target,
                &ctx.user(account),
                &ctx.password(account),
                &format!("churn{n}"),
            )
            .await?
        };
        c.available_and_ping(t + ctx.target.timeout).await?;
        anyhow::Ok(c)
    };
    let mut c = match login.await {
        Ok(c) => c,
        Err(e) => {
            let kind = if sasl2 { "login:sasl2" } else { "login:sasl" };
            shared.tally.error(kind, &format!("{who}: {e:#}"));
            return;
        }
    };
    shared
        .tally
        .record(Op::Login, t.elapsed().as_micros() as u64, &who);
    shared.churn_online.fetch_add(1, Ordering::Relaxed);
    let until = Instant::now() + hold;
    let closed = loop {
        match c.next_event(until).await {
            Ok(StreamEvent::End) => break Some("the server closed the stream".to_string()),
            Ok(_) => {}
            Err(_) if Instant::now() >= until => break None,
            Err(e) => break Some(format!("{e:#}")),
        }
    };
    match closed {
        Some(why) => shared
            .tally
            .error("churn:closed_by_server", &format!("{who}: {why}")),
        None => {
            let (rd, wr) = c.split();
            logout(&shared, rd, wr, &who).await;
        }
    }
    shared.churn_online.fetch_sub(1, Ordering::Relaxed);
}
