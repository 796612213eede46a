//! `muc`: R rooms, U accounts per room, K sessions per account, each
//! session joining with XEP-0045 presence (same nick for the sessions of an
//! account; a server that refuses a shared nick gets `nick.k`); S senders
//! post groupchat messages at a total target rate for T seconds. Every
//! joined session should receive every message of its room.
//!
//! Reported: deliveries per second, latency percentiles, losses, server
//! CPU seconds per 1,000 deliveries, deliveries per message, and — when the
//! server's counters are given (`--metrics`, Roost's `/metrics`) — the
//! stanzas rooms sent to accounts per message (`account_muc_received`) and
//! the copies forked to sessions (`account_muc_forked`). With account-based
//! joining that is one stanza per account whatever K; with plain XEP-0045
//! the room sends one per session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::{delta, metrics, spawn_reader, spawn_sender, wait_until, Ctx, Received};
use crate::stats::{losses, ms, rate};
use crate::sys;
use crate::xmpp::{escape, Conn};

pub struct Params {
    pub rooms: u64,
    pub users: u64,
    pub sessions: u64,
    pub senders: u64,
    pub rate: f64,
    pub duration: u64,
    pub drain: u64,
    /// Room names are `<prefix><r>@<muc domain>`.
    pub room_prefix: String,
}

impl Params {
    fn room(&self, ctx: &Ctx, r: u64) -> String {
        format!("{}{r}@{}", self.room_prefix, ctx.muc_domain)
    }
}

/// Log in and join; on a nick conflict (a server that does not share a
/// nick between sessions of one account) retry once with `nick.k`.
async fn join(ctx: &Ctx, account: u64, k: u64, room: &str) -> anyhow::Result<Conn> {
    let (mut c, _) = ctx.login(account, &format!("s{k}")).await?;
    let nick = ctx.user(account);
    let deadline = Instant::now() + ctx.target.timeout;
    match c.join_room(room, &nick, deadline).await? {
        Ok(_) => Ok(c),
        Err(cond) if cond == "conflict" => {
            match c.join_room(room, &format!("{nick}.{k}"), deadline).await? {
                Ok(_) => Ok(c),
                Err(cond) => anyhow::bail!("join {room} as {nick}.{k}: {cond}"),
            }
        }
        Err(cond) => anyhow::bail!("join {room} as {nick}: {cond}"),
    }
}

pub async fn run(ctx: Arc<Ctx>, p: Params) -> anyhow::Result<(String, String)> {
    let p = Arc::new(p);
    let limit = sys::raise_nofile();
    let total = p.rooms * p.users * p.sessions;
    if total + 64 > limit {
        anyhow::bail!("{total} sessions need more than RLIMIT_NOFILE = {limit}");
    }
    if p.senders == 0 || p.senders > p.rooms * p.users {
        anyhow::bail!("--senders must be 1..=rooms*users");
    }
    let rx = Arc::new(Received::default());
    let (stop_tx, stop) = watch::channel(false);
    let (send_stop_tx, send_stop) = watch::channel(false);
    let t_setup = Instant::now();
    // Session (r, u, k) is account r*U + u with resource s<k>. The first
    // session of each room creates it (and makes it an instant room).
    let order: Vec<(u64, u64, u64)> = {
        let mut v = Vec::with_capacity(total as usize);
        for k in 0..p.sessions {
            for u in 0..p.users {
                for r in 0..p.rooms {
                    v.push((r, u, k));
                }
            }
        }
        v
    };
    let sem = Arc::new(Semaphore::new(ctx.setup_concurrency.max(1)));
    let mut sessions: Vec<((u64, u64, u64), Conn)> = Vec::with_capacity(total as usize);
    // Creators first, then everyone else.
    for phase in [&order[..p.rooms as usize], &order[p.rooms as usize..]] {
        let mut tasks = Vec::new();
        for &(r, u, k) in phase {
            let (ctx, sem, p) = (ctx.clone(), sem.clone(), p.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                let room = p.room(&ctx, r);
                join(&ctx, r * p.users + u, k, &room)
                    .await
                    .map(|c| ((r, u, k), c))
            }));
        }
        for t in tasks {
            match t.await {
                Ok(Ok(s)) => sessions.push(s),
                Ok(Err(e)) => anyhow::bail!("muc setup: {e:#}"),
                Err(e) => anyhow::bail!("muc setup task: {e}"),
            }
        }
    }
    let setup_secs = t_setup.elapsed().as_secs_f64();
    let mut per_room = vec![0u64; p.rooms as usize];
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for ((r, u, k), c) in sessions {
        per_room[r as usize] += 1;
        let (rd, wr) = c.split();
        readers.push(spawn_reader(ctx.clone(), rd, rx.clone(), stop.clone()));
        writers.push(((r, u, k), wr));
    }
    // Let the join presences settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let m_before = metrics(&ctx).await;
    let before = sys::sample(ctx.server_pid);
    let t0 = Instant::now();
    // Sender s is session k=0 of account u = s / R in room r = s % R.
    let per_sender = p.rate / p.senders as f64;
    let period = 1.0 / per_sender.max(1e-3);
    let mut senders = Vec::new();
    let mut idle_writers = Vec::new();
    for ((r, u, k), wr) in writers {
        let s = u * p.rooms + r;
        if k == 0 && s < p.senders {
            let room = escape(&p.room(&ctx, r));
            let offset = Duration::from_secs_f64((period * s as f64 / p.senders as f64).min(1.0));
            senders.push((
                r,
                spawn_sender(
                    ctx.clone(),
                    wr,
                    s,
                    per_sender,
                    offset,
                    send_stop.clone(),
                    move |body, seq| {
                        format!("<message to='{room}' type='groupchat' id='m{s}-{seq}'><body>{body}</body></message>")
                    },
                ),
            ));
        } else {
            idle_writers.push(wr);
        }
    }
    tokio::time::sleep(Duration::from_secs(p.duration)).await;
    let _ = send_stop_tx.send(true);
    let mut sent = 0u64;
    let expected = AtomicU64::new(0);
    for (r, task) in senders {
        if let Ok((wr, n)) = task.await {
            sent += n;
            expected.fetch_add(n * per_room[r as usize], Ordering::Relaxed);
            idle_writers.push(wr);
        }
    }
    let expected = expected.load(Ordering::Relaxed);
    let send_secs = t0.elapsed().as_secs_f64();
    let drained = wait_until(Duration::from_secs(p.drain), || {
        rx.messages.load(Ordering::Relaxed) >= expected
    })
    .await;
    let after = sys::sample(ctx.server_pid);
    let m_after = metrics(&ctx).await;
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    let closing = Arc::new(Semaphore::new(256));
    let mut closes = Vec::new();
    for w in idle_writers {
        let closing = closing.clone();
        closes.push(tokio::spawn(async move {
            let _p = closing.acquire_owned().await;
            w.close().await;
        }));
    }
    for c in closes {
        let _ = c.await;
    }

    let received = rx.messages.load(Ordering::Relaxed);
    let s = rx.latency.summary();
    let cpu = match (before.cpu_s, after.cpu_s) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let per_msg = |v: Option<f64>| v.map(|v| if sent > 0 { v / sent as f64 } else { 0.0 });
    let room_stanzas = per_msg(delta(
        &m_before,
        &m_after,
        "roost_account_muc_received_total",
    ));
    let forked = per_msg(delta(&m_before, &m_after, "roost_account_muc_forked_total"));
    let lost = losses(expected, received);
    let line = ctx
        .line("muc")
        .int("rooms", p.rooms)
        .int("users", p.users)
        .int("sessions_per_user", p.sessions)
        .int("senders", p.senders)
        .num("target_rate", p.rate)
        .int("duration_s", p.duration)
        .num("setup_s", setup_secs)
        .int("sent", sent)
        .int("expected", expected)
        .int("received", received)
        .int("lost", lost)
        .int("errors", rx.errors.load(Ordering::Relaxed))
        .int("closed", rx.closed.load(Ordering::Relaxed))
        .num("sent_per_s", rate(sent, send_secs))
        .num("deliveries_per_s", rate(received, send_secs))
        .num(
            "deliveries_per_msg",
            if sent > 0 {
                received as f64 / sent as f64
            } else {
                0.0
            },
        )
        .opt_num("room_stanzas_per_msg", room_stanzas)
        .opt_num(
            "room_stanzas_per_msg_per_account",
            room_stanzas.map(|v| v / p.users as f64),
        )
        .opt_num("forked_per_msg", forked)
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
        .opt_num(
            "deliveries_per_cpu_s",
            cpu.map(|c| if c > 0.0 { received as f64 / c } else { 0.0 }),
        )
        .str("drained", if drained { "yes" } else { "no" })
        .finish();
    let human = format!(
        "muc [{}]: {}x{}x{} sessions, {} senders at {:.0}/s for {} s: sent {sent}, delivered {received}/{expected} ({:.0}/s), lost {lost}; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms{}{}",
        ctx.label,
        p.rooms,
        p.users,
        p.sessions,
        p.senders,
        p.rate,
        p.duration,
        rate(received, send_secs),
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        cpu.map(|c| format!(
            "; server CPU {c:.2} s = {:.3} s per 1000 deliveries",
            if received > 0 { c * 1000.0 / received as f64 } else { 0.0 }
        ))
        .unwrap_or_default(),
        room_stanzas
            .map(|v| format!("; room sent {v:.2} stanzas per message ({:.2} per account)", v / p.users as f64))
            .unwrap_or_default()
    );
    Ok((line, human))
}
