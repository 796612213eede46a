//! `reconnect`: N phones come back after losing their network. Untimed
//! setup: every account logs in with SASL2 and Bind 2 (stream management
//! on, a FAST token requested), sends presence, joins one of R rooms, and
//! then its connection is dropped without a stream close (the session
//! hibernates). Timed: every account reconnects at concurrency C, either
//!
//! - `fast`: one SASL2 round trip with the FAST token and an inline
//!   XEP-0198 `<resume/>` (XEP-0484, XEP-0388): the session, its presence
//!   and its room are back as they were; or
//! - `full`: SCRAM (RFC 6120 SASL), a stream restart, resource binding,
//!   presence and joining the room again: what a client without these
//!   extensions does.
//!
//! Reconnects per second, XMPP round trips per reconnect (what a phone on
//! a slow network waits for), latency percentiles, server CPU per
//! reconnect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Ctx;
use crate::stats::{ms, rate, Histogram};
use crate::sys;
use crate::xmpp::{Conn, NS_SM};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// FAST token and inline resumption: one round trip.
    Fast,
    /// SCRAM, bind, presence, rejoin.
    Full,
}

pub struct Params {
    pub n: u64,
    pub concurrency: usize,
    pub rooms: u64,
    pub mode: Mode,
    pub room_prefix: String,
}

/// What a phone keeps between connections.
struct Kept {
    token: String,
    previd: String,
    handled: u32,
}

/// The SASL2 user-agent id of account `i`'s phone (a UUID shape).
fn user_agent(i: u64) -> String {
    format!("<user-agent id='00000000-0000-4000-8000-{i:012}'><software>roost-load</software></user-agent>")
}

fn room(p: &Params, ctx: &Ctx, i: u64) -> String {
    format!("{}{}@{}", p.room_prefix, i % p.rooms.max(1), ctx.muc_domain)
}

/// Log in with SASL2 + Bind 2 + SM + token request, join the room, lose
/// the connection; what the phone keeps.
async fn setup_one(ctx: &Ctx, p: &Params, i: u64) -> anyhow::Result<Kept> {
    let deadline = Instant::now() + ctx.target.timeout;
    let inline = format!(
        "{}<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='{NS_SM}' resume='true'/></bind><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>",
        user_agent(i)
    );
    let (mut c, ok) =
        Conn::sasl2_login(&ctx.target, &ctx.user(i), &ctx.password(i), &inline).await?;
    let token = ok
        .get_child("token", "urn:xmpp:fast:0")
        .and_then(|t| t.attr("token"))
        .ok_or_else(|| anyhow::anyhow!("no FAST token: {}", String::from(&ok)))?
        .to_string();
    let previd = ok
        .get_child("bound", "urn:xmpp:bind:0")
        .and_then(|b| b.get_child("enabled", NS_SM))
        .and_then(|e| e.attr("id"))
        .ok_or_else(|| anyhow::anyhow!("stream management not enabled"))?
        .to_string();
    c.available_and_ping(deadline).await?;
    let nick = ctx.user(i);
    if let Err(e) = c.join_room(&room(p, ctx, i), &nick, deadline).await? {
        anyhow::bail!("join refused: {e}");
    }
    // Let what is in flight arrive, so `h` covers it.
    c.iq(deadline, "get", None, "<ping xmlns='urn:xmpp:ping'/>")
        .await?;
    let handled = c.handled.unwrap_or(0);
    c.lose();
    Ok(Kept {
        token,
        previd,
        handled,
    })
}

async fn reconnect_one(ctx: &Ctx, p: &Params, i: u64, kept: &Kept) -> anyhow::Result<Conn> {
    let deadline = Instant::now() + ctx.target.timeout;
    match p.mode {
        Mode::Fast => {
            let inline = format!(
                "{}<resume xmlns='{NS_SM}' previd='{}' h='{}'/>",
                user_agent(i),
                kept.previd,
                kept.handled
            );
            let (c, ok) = Conn::fast_login(&ctx.target, &ctx.user(i), &kept.token, &inline).await?;
            if !ok.has_child("resumed", NS_SM) {
                anyhow::bail!("not resumed: {}", String::from(&ok));
            }
            Ok(c)
        }
        Mode::Full => {
            let mut c = Conn::login(&ctx.target, &ctx.user(i), &ctx.password(i), "phone").await?;
            c.available_and_ping(deadline).await?;
            if let Err(e) = c
                .join_room(&room(p, ctx, i), &ctx.user(i), deadline)
                .await?
            {
                anyhow::bail!("rejoin refused: {e}");
            }
            Ok(c)
        }
    }
}

pub async fn run(ctx: Arc<Ctx>, p: Params) -> anyhow::Result<(String, String)> {
    let p = Arc::new(p);
    let sem = Arc::new(Semaphore::new(ctx.setup_concurrency.max(1)));
    let mut setups = Vec::with_capacity(p.n as usize);
    // The first account of each room creates it, before anyone else joins
    // (a room is locked until its creator configures it).
    let creators = p.rooms.max(1).min(p.n);
    for i in 0..creators {
        let (ctx, p) = (ctx.clone(), p.clone());
        setups.push(tokio::spawn(async move { setup_one(&ctx, &p, i).await }));
    }
    let mut kept = Vec::with_capacity(p.n as usize);
    for (i, t) in std::mem::take(&mut setups).into_iter().enumerate() {
        match t.await {
            Ok(Ok(k)) => kept.push(k),
            Ok(Err(e)) => anyhow::bail!("setup of account {i}: {e:#}"),
            Err(e) => anyhow::bail!("setup task: {e}"),
        }
    }
    for i in creators..p.n {
        let (ctx, p, sem) = (ctx.clone(), p.clone(), sem.clone());
        setups.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            setup_one(&ctx, &p, i).await
        }));
    }
    for (i, t) in setups.into_iter().enumerate() {
        match t.await {
            Ok(Ok(k)) => kept.push(k),
            Ok(Err(e)) => anyhow::bail!("setup of account {}: {e:#}", creators + i as u64),
            Err(e) => anyhow::bail!("setup task: {e}"),
        }
    }
    // Let the server notice the lost connections.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let kept = Arc::new(kept);
    let hist = Arc::new(Histogram::new());
    let round_trips = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let sem = Arc::new(Semaphore::new(p.concurrency.max(1)));
    let before = sys::sample(ctx.server_pid);
    let self_before = sys::self_cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(p.n as usize);
    for i in 0..p.n {
        let (ctx, p, kept, hist, failed, first_error, sem, round_trips) = (
            ctx.clone(),
            p.clone(),
            kept.clone(),
            hist.clone(),
            failed.clone(),
            first_error.clone(),
            sem.clone(),
            round_trips.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let t = Instant::now();
            match reconnect_one(&ctx, &p, i, &kept[i as usize]).await {
                Ok(conn) => {
                    hist.record(t.elapsed().as_micros() as u64);
                    round_trips.fetch_add(conn.round_trips as u64, Ordering::Relaxed);
                    conn.close().await;
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(format!("{e:#}"));
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = sys::sample(ctx.server_pid);
    let s = hist.summary();
    let server_cpu = match (before.cpu_s, after.cpu_s) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let failed = failed.load(Ordering::Relaxed);
    let error = first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default();
    let mode = format!("{:?}", p.mode).to_lowercase();
    let per_s = rate(s.count, secs);
    let rtts = if s.count > 0 {
        round_trips.load(Ordering::Relaxed) as f64 / s.count as f64
    } else {
        0.0
    };
    let line = ctx
        .line("reconnect")
        .str("mode", &mode)
        .int("n", p.n)
        .int("rooms", p.rooms)
        .int("concurrency", p.concurrency as u64)
        .int("ok", s.count)
        .int("failed", failed)
        .num("seconds", secs)
        .num("reconnects_per_s", per_s)
        .num("round_trips", rtts)
        .num("p50_ms", ms(s.p50))
        .num("p99_ms", ms(s.p99))
        .num("max_ms", ms(s.max))
        .opt_num("server_cpu_s", server_cpu)
        .opt_num(
            "server_cpu_ms_per_reconnect",
            server_cpu.map(|c| {
                if s.count > 0 {
                    c * 1000.0 / s.count as f64
                } else {
                    0.0
                }
            }),
        )
        .num("client_cpu_s", sys::self_cpu_seconds() - self_before)
        .str("first_error", &error)
        .finish();
    let human = format!(
        "reconnect [{}] {mode}: {}/{} back in {:.2} s = {:.0}/s at concurrency {}; {rtts:.1} XMPP round trips each (plus TCP and TLS); latency p50 {:.1} ms, p99 {:.1} ms{}{}",
        ctx.label,
        s.count,
        p.n,
        secs,
        per_s,
        p.concurrency,
        ms(s.p50),
        ms(s.p99),
        server_cpu
            .map(|c| format!("; server CPU {c:.2} s"))
            .unwrap_or_default(),
        if error.is_empty() {
            String::new()
        } else {
            format!("; first error: {error}")
        }
    );
    Ok((line, human))
}
