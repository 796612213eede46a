//! `login`: N full logins at concurrency C (connect, TLS, SASL, bind,
//! initial presence acknowledged by a ping), each connection closed right
//! after. Logins per second, latency percentiles, server CPU per login.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Ctx;
use crate::stats::{ms, rate, Histogram};
use crate::sys;

pub struct Params {
    pub n: u64,
    pub concurrency: usize,
    /// Accounts cycled through (default: n).
    pub accounts: u64,
    /// Log every account in once, untimed, before measuring.
    pub warm_up: bool,
}

/// One untimed login per account, at the scenario's concurrency: the tool
/// keeps each SaltedPassword (see `xmpp.rs`). Failures show up again, and
/// are counted, in the timed pass.
async fn warm_up(ctx: &Arc<Ctx>, accounts: u64, concurrency: usize) {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(accounts as usize);
    for i in 0..accounts {
        let (ctx, sem) = (ctx.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            if let Ok((conn, _)) = ctx.login(i, &format!("warm{i}")).await {
                conn.close().await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

pub async fn run(ctx: Arc<Ctx>, p: Params) -> anyhow::Result<(String, String)> {
    let hist = Arc::new(Histogram::new());
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let sem = Arc::new(Semaphore::new(p.concurrency.max(1)));
    let accounts = p.accounts.max(1);
    if p.warm_up {
        warm_up(&ctx, accounts.min(p.n), p.concurrency).await;
    }
    let before = sys::sample(ctx.server_pid);
    let self_before = sys::self_cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(p.n as usize);
    for i in 0..p.n {
        let (ctx, hist, failed, first_error, sem) = (
            ctx.clone(),
            hist.clone(),
            failed.clone(),
            first_error.clone(),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            match ctx.login(i % accounts, &format!("login{i}")).await {
                Ok((conn, took)) => {
                    hist.record(took.as_micros() as u64);
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
    let logins_per_s = rate(s.count, secs);
    let error = first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default();
    if s.count == 0 && p.n > 0 {
        anyhow::bail!("no login succeeded: {error}");
    }
    let line = ctx
        .line("login")
        .int("n", p.n)
        .str("warm_up", if p.warm_up { "yes" } else { "no" })
        .int("concurrency", p.concurrency as u64)
        .int("ok", s.count)
        .int("failed", failed)
        .num("seconds", secs)
        .num("logins_per_s", logins_per_s)
        .num("p50_ms", ms(s.p50))
        .num("p90_ms", ms(s.p90))
        .num("p99_ms", ms(s.p99))
        .num("max_ms", ms(s.max))
        .opt_num("server_cpu_s", server_cpu)
        .opt_num(
            "server_cpu_ms_per_login",
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
        "login [{}]: {}/{} ok in {:.1} s = {:.0} logins/s at concurrency {}; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}{}",
        ctx.label,
        s.count,
        p.n,
        secs,
        logins_per_s,
        p.concurrency,
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
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
