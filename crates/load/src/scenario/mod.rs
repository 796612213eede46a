//! The scenarios and what they share: the run context (target, account
//! naming, the clock that timestamps message bodies), provisioning with
//! XEP-0077, bounded-concurrency logins and the receive path that turns
//! timestamped bodies into latencies.

pub mod chat;
pub mod idle;
pub mod join;
pub mod login;
pub mod muc;
pub mod reconnect;
pub mod soak;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use roost_stream::StreamEvent;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::json::Line;
use crate::stats::Histogram;
use crate::xmpp::{self, Conn, ReadSide, Target, NS_CLIENT};

/// Account naming and where to reach the server, shared by every task.
pub struct Ctx {
    pub target: Target,
    /// User name pattern, `{n}` replaced by the account number.
    pub user: String,
    /// Password pattern, `{n}` replaced by the account number.
    pub password: String,
    /// Number of the first account.
    pub first: u64,
    pub muc_domain: String,
    pub label: String,
    pub server_pid: Option<u32>,
    pub metrics: Option<String>,
    /// Logins (or registrations) in flight at once while setting up.
    pub setup_concurrency: usize,
    /// Timestamps in message bodies count from here.
    pub base: Instant,
}

impl Ctx {
    pub fn user(&self, i: u64) -> String {
        self.user.replace("{n}", &(self.first + i).to_string())
    }

    pub fn password(&self, i: u64) -> String {
        self.password.replace("{n}", &(self.first + i).to_string())
    }

    pub fn bare(&self, i: u64) -> String {
        format!("{}@{}", self.user(i), self.target.domain)
    }

    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    /// The fields every result line starts with.
    pub fn line(&self, scenario: &str) -> Line {
        Line::new()
            .str("scenario", scenario)
            .str("label", &self.label)
            .str("server", &self.target.addr.to_string())
            .str("domain", &self.target.domain)
            .str("tls", &format!("{:?}", self.target.tls).to_lowercase())
            .str("mech", self.target.mech.name())
    }

    /// Log in account `i` with `resource`, send initial presence and wait
    /// for a ping answer; returns the connection and how long it took.
    pub async fn login(&self, i: u64, resource: &str) -> anyhow::Result<(Conn, Duration)> {
        let t0 = Instant::now();
        let mut c = Conn::login(&self.target, &self.user(i), &self.password(i), resource).await?;
        c.available_and_ping(Instant::now() + self.target.timeout)
            .await?;
        Ok((c, t0.elapsed()))
    }

    /// XEP-0077: create accounts `0..count` (existing ones are fine).
    pub async fn register(self: &Arc<Self>, count: u64) -> anyhow::Result<(u64, u64)> {
        let sem = Arc::new(Semaphore::new(self.setup_concurrency.max(1)));
        let mut tasks = Vec::new();
        for i in 0..count {
            let ctx = self.clone();
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                xmpp::register(&ctx.target, &ctx.user(i), &ctx.password(i)).await
            }));
        }
        let (mut created, mut existed) = (0, 0);
        let mut first_error = None;
        for t in tasks {
            match t.await {
                Ok(Ok(true)) => created += 1,
                Ok(Ok(false)) => existed += 1,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(anyhow::anyhow!("task failed: {e}"));
                }
            }
        }
        if let Some(e) = first_error {
            anyhow::bail!("registration: {created} created, {existed} existed, then: {e:#}");
        }
        Ok((created, existed))
    }
}

/// What the receivers of a run count.
#[derive(Default)]
pub struct Received {
    /// Latency of timestamped messages, in microseconds.
    pub latency: Histogram,
    pub messages: AtomicU64,
    /// Message errors bounced by the server.
    pub errors: AtomicU64,
    /// Connections the server closed during the run.
    pub closed: AtomicU64,
}

/// The body of a measured message: send time (µs since `Ctx::base`),
/// sender and sequence number.
pub fn body(ts_us: u64, sender: u64, seq: u64) -> String {
    format!("lg {ts_us} {sender} {seq}")
}

/// The send time in a measured body.
pub fn body_ts(body: &str) -> Option<u64> {
    let mut f = body.strip_prefix("lg ")?.split(' ');
    f.next()?.parse().ok()
}

impl Received {
    /// Count one element read by a session.
    pub fn element(&self, el: &Element, now_us: u64) {
        if el.name() != "message" {
            return;
        }
        if el.attr("type") == Some("error") {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Offline messages and history of an earlier run (XEP-0203).
        if el.has_child("delay", "urn:xmpp:delay") {
            return;
        }
        let Some(ts) = el
            .get_child("body", NS_CLIENT)
            .and_then(|b| body_ts(&b.text()))
        else {
            return;
        };
        self.latency.record(now_us.saturating_sub(ts));
        self.messages.fetch_add(1, Ordering::Relaxed);
    }
}

/// Read a session until `stop`; every message is counted in `rx`.
/// Returns the read half so the caller can close the stream.
pub fn spawn_reader(
    ctx: Arc<Ctx>,
    mut rd: ReadSide,
    rx: Arc<Received>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<ReadSide> {
    tokio::spawn(async move {
        loop {
            // Events read during the login are counted too.
            while let Some(ev) = rd.pop_event() {
                match ev {
                    StreamEvent::Element(e) => rx.element(&e, ctx.now_us()),
                    StreamEvent::End => {
                        rx.closed.fetch_add(1, Ordering::Relaxed);
                        return rd;
                    }
                    StreamEvent::Header(_) => {}
                }
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return rd,
                r = rd.read_some() => {
                    if !matches!(r, Ok(true)) {
                        rx.closed.fetch_add(1, Ordering::Relaxed);
                        return rd;
                    }
                }
            }
        }
    })
}

/// Send measured messages at `rate` per second until `stop`, spreading
/// the first send by `offset`; `make` builds the stanza from a body.
/// Returns the write half and how many were sent.
pub fn spawn_sender(
    ctx: Arc<Ctx>,
    mut wr: xmpp::WriteSide,
    sender: u64,
    rate: f64,
    offset: Duration,
    mut stop: watch::Receiver<bool>,
    make: impl Fn(&str, u64) -> String + Send + 'static,
) -> tokio::task::JoinHandle<(xmpp::WriteSide, u64)> {
    tokio::spawn(async move {
        let period = Duration::from_secs_f64((1.0 / rate.max(1e-3)).clamp(0.001, 0.05));
        tokio::select! {
            _ = tokio::time::sleep(offset) => {}
            _ = stop.wait_for(|s| *s) => return (wr, 0),
        }
        let start = Instant::now();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                _ = tick.tick() => {}
            }
            // +1: the first message goes out at the start, not after one period.
            let n = crate::stats::due(rate, start.elapsed().as_secs_f64(), sent, 100)
                + u64::from(sent == 0);
            let mut batch = String::new();
            for _ in 0..n {
                batch.push_str(&make(&body(ctx.now_us(), sender, sent), sent));
                sent += 1;
            }
            if !batch.is_empty() && wr.send_str(&batch).await.is_err() {
                break;
            }
        }
        (wr, sent)
    })
}

/// Wait until `done()` or `limit` passed, polling every 20 ms.
pub async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Roost's counters (or any Prometheus endpoint), if one was given.
pub async fn metrics(ctx: &Ctx) -> Option<std::collections::HashMap<String, f64>> {
    let m = ctx.metrics.as_deref()?;
    match crate::sys::fetch_metrics(m).await {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("warning: metrics from {m}: {e:#}");
            None
        }
    }
}

/// A counter's change between two snapshots.
pub fn delta(
    before: &Option<std::collections::HashMap<String, f64>>,
    after: &Option<std::collections::HashMap<String, f64>>,
    name: &str,
) -> Option<f64> {
    Some(after.as_ref()?.get(name)? - before.as_ref()?.get(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_timestamp() {
        assert_eq!(body_ts(&body(123_456, 7, 9)), Some(123_456));
        assert_eq!(body_ts("hello"), None);
        assert_eq!(body_ts("lg x 1 2"), None);
    }

    #[test]
    fn received_counts_measured_messages_only() {
        let rx = Received::default();
        let msg = |body: &str, kind: &str| -> Element {
            format!("<message xmlns='jabber:client' type='{kind}'><body>{body}</body></message>")
                .parse()
                .unwrap()
        };
        rx.element(&msg("lg 1000 1 1", "groupchat"), 3500);
        rx.element(&msg("lg 1000 1 2", "chat"), 2000);
        rx.element(&msg("subject or history", "groupchat"), 9000);
        let delayed: Element = "<message xmlns='jabber:client' type='chat'><body>lg 1 1 1</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>"
            .parse()
            .unwrap();
        rx.element(&delayed, 9000);
        rx.element(&msg("lg 1 1 1", "error"), 9000);
        let presence: Element = "<presence xmlns='jabber:client'/>".parse().unwrap();
        rx.element(&presence, 9000);
        assert_eq!(rx.messages.load(Ordering::Relaxed), 2);
        assert_eq!(rx.errors.load(Ordering::Relaxed), 1);
        assert_eq!(rx.latency.max(), 2500);
        assert_eq!(rx.latency.min(), 1000);
    }

    #[test]
    fn deltas_need_both_snapshots() {
        let a = Some([("x".to_string(), 5.0)].into_iter().collect());
        let b = Some([("x".to_string(), 12.0)].into_iter().collect());
        assert_eq!(delta(&a, &b, "x"), Some(7.0));
        assert_eq!(delta(&a, &b, "y"), None);
        assert_eq!(delta(&None, &b, "x"), None);
    }
}
