//! `chat`: P pairs of accounts send one-to-one messages (type chat, to the
//! partner's bare JID) both ways at a total target rate for T seconds.
//! Every body carries its send time; receivers turn it into latency.
//! Delivered per second, latency percentiles, losses after a drain wait,
//! server CPU per 1,000 messages. With a peer server (`--peer-server`),
//! the second account of every pair lives there: each message crosses a
//! server-to-server stream (federation throughput and latency).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::{spawn_reader, spawn_sender, wait_until, Ctx, Received};
use crate::stats::{losses, ms, rate};
use crate::sys;
use crate::xmpp::escape;

pub struct Params {
    pub pairs: u64,
    /// Messages per second, all senders together.
    pub rate: f64,
    pub duration: u64,
    /// Seconds to wait for stragglers after the last send.
    pub drain: u64,
}

pub async fn run(
    ctx: Arc<Ctx>,
    peer: Option<Arc<Ctx>>,
    p: Params,
) -> anyhow::Result<(String, String)> {
    // Account i's server: odd accounts on the peer, when there is one.
    let side = |i: u64| -> Arc<Ctx> {
        match &peer {
            Some(peer) if i % 2 == 1 => peer.clone(),
            _ => ctx.clone(),
        }
    };
    let sessions = p.pairs * 2;
    let rx = Arc::new(Received::default());
    let (stop_tx, stop) = watch::channel(false);
    let (send_stop_tx, send_stop) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(ctx.setup_concurrency.max(1)));
    let mut logins = Vec::new();
    for i in 0..sessions {
        let (ctx, sem) = (side(i), sem.clone());
        logins.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            ctx.login(i, "chat").await.map(|(c, _)| c)
        }));
    }
    let mut conns = Vec::new();
    for (i, l) in logins.into_iter().enumerate() {
        match l.await {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => anyhow::bail!("login of {}: {e:#}", ctx.user(i as u64)),
            Err(e) => anyhow::bail!("login task: {e}"),
        }
    }
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for c in conns {
        let (rd, wr) = c.split();
        readers.push(spawn_reader(ctx.clone(), rd, rx.clone(), stop.clone()));
        writers.push(wr);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_sender = p.rate / sessions as f64;
    let period = 1.0 / per_sender.max(1e-3);
    let before = sys::sample(ctx.server_pid);
    let t0 = Instant::now();
    let mut senders = Vec::new();
    for (i, wr) in writers.into_iter().enumerate() {
        let i = i as u64;
        let to = escape(&side(i ^ 1).bare(i ^ 1));
        let offset = Duration::from_secs_f64((period * i as f64 / sessions as f64).min(1.0));
        senders.push(spawn_sender(
            ctx.clone(),
            wr,
            i,
            per_sender,
            offset,
            send_stop.clone(),
            move |body, seq| {
                format!("<message to='{to}' type='chat' id='c{seq}'><body>{body}</body></message>")
            },
        ));
    }
    tokio::time::sleep(Duration::from_secs(p.duration)).await;
    let _ = send_stop_tx.send(true);
    let mut sent = 0;
    let mut writers = Vec::new();
    for s in senders {
        if let Ok((wr, n)) = s.await {
            sent += n;
            writers.push(wr);
        }
    }
    let send_secs = t0.elapsed().as_secs_f64();
    let drained = wait_until(Duration::from_secs(p.drain), || {
        rx.messages.load(Ordering::Relaxed) >= sent
    })
    .await;
    let total_secs = t0.elapsed().as_secs_f64();
    let after = sys::sample(ctx.server_pid);
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    for w in writers {
        w.close().await;
    }
    let received = rx.messages.load(Ordering::Relaxed);
    let s = rx.latency.summary();
    let cpu = match (before.cpu_s, after.cpu_s) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let lost = losses(sent, received);
    let line = ctx
        .line("chat")
        .int("pairs", p.pairs)
        .str(
            "peer",
            &peer
                .as_ref()
                .map(|p| p.target.domain.clone())
                .unwrap_or_default(),
        )
        .num("target_rate", p.rate)
        .int("duration_s", p.duration)
        .int("sent", sent)
        .int("received", received)
        .int("lost", lost)
        .int("errors", rx.errors.load(Ordering::Relaxed))
        .int("closed", rx.closed.load(Ordering::Relaxed))
        .num("sent_per_s", rate(sent, send_secs))
        .num("delivered_per_s", rate(received, send_secs))
        .num("p50_ms", ms(s.p50))
        .num("p90_ms", ms(s.p90))
        .num("p99_ms", ms(s.p99))
        .num("max_ms", ms(s.max))
        .opt_num("server_cpu_s", cpu)
        .opt_num(
            "server_cpu_s_per_1000",
            cpu.map(|c| {
                if received > 0 {
                    c * 1000.0 / received as f64
                } else {
                    0.0
                }
            }),
        )
        .num("window_s", total_secs)
        .str("drained", if drained { "yes" } else { "no" })
        .finish();
    let human = format!(
        "chat [{}]: {} pairs, target {:.0}/s: sent {sent}, delivered {received} ({:.0}/s), lost {lost}; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms{}",
        ctx.label,
        p.pairs,
        p.rate,
        rate(received, send_secs),
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        cpu.map(|c| format!("; server CPU {c:.2} s")).unwrap_or_default()
    );
    Ok((line, human))
}
