//! `idle`: hold N authenticated, available sessions and measure what they
//! cost the server: VmRSS of `--server-pid` before and after, per session.
//! The server needs `ulimit -n` above N (one descriptor per connection);
//! this tool raises its own soft limit to the hard one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::{spawn_reader, Ctx, Received};
use crate::stats::{ms, rate, Histogram};
use crate::sys;

pub struct Params {
    pub n: u64,
    pub concurrency: usize,
    /// Seconds to hold the sessions once all are up.
    pub hold: u64,
    /// Seconds to let the server settle before each memory sample.
    pub settle: u64,
}

pub async fn run(ctx: Arc<Ctx>, p: Params) -> anyhow::Result<(String, String)> {
    let limit = sys::raise_nofile();
    if p.n + 64 > limit {
        anyhow::bail!(
            "{} sessions need {} file descriptors; RLIMIT_NOFILE is {limit} (raise the hard limit with `ulimit -Hn`)",
            p.n,
            p.n + 64
        );
    }
    tokio::time::sleep(Duration::from_secs(p.settle)).await;
    let before = sys::sample(ctx.server_pid);
    let self_rss_before = sys::rss_kib(std::process::id()).unwrap_or(0);
    let hist = Arc::new(Histogram::new());
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let sem = Arc::new(Semaphore::new(p.concurrency.max(1)));
    let rx = Arc::new(Received::default());
    let (stop_tx, stop) = watch::channel(false);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(p.n as usize);
    for i in 0..p.n {
        let (ctx, hist, failed, first_error, sem, rx, stop) = (
            ctx.clone(),
            hist.clone(),
            failed.clone(),
            first_error.clone(),
            sem.clone(),
            rx.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            match ctx.login(i, "idle").await {
                Ok((conn, took)) => {
                    drop(permit);
                    hist.record(took.as_micros() as u64);
                    let (rd, wr) = conn.split();
                    Some((spawn_reader(ctx, rd, rx, stop), wr))
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(format!("{e:#}"));
                    None
                }
            }
        }));
    }
    let mut sessions = Vec::with_capacity(p.n as usize);
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            sessions.push(s);
        }
    }
    let up_secs = t0.elapsed().as_secs_f64();
    let up_cpu = sys::sample(ctx.server_pid);
    tokio::time::sleep(Duration::from_secs(p.settle)).await;
    let after = sys::sample(ctx.server_pid);
    let self_rss_after = sys::rss_kib(std::process::id()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(p.hold)).await;
    let end = sys::sample(ctx.server_pid);
    let dropped = rx.closed.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let held = sessions.len() as u64;
    // Close in parallel, but not all at once.
    let sem = Arc::new(Semaphore::new(256));
    let mut closing = Vec::new();
    for (reader, wr) in sessions {
        let sem = sem.clone();
        closing.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            let _ = reader.await;
            wr.close().await;
        }));
    }
    for c in closing {
        let _ = c.await;
    }
    let per_session = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if held > 0 => Some((b as f64 - a as f64) / held as f64),
        _ => None,
    };
    let rss_per = per_session(before.rss_kib, after.rss_kib);
    let s = hist.summary();
    let error = first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default();
    let login_cpu = match (before.cpu_s, up_cpu.cpu_s) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    if held == 0 && p.n > 0 {
        anyhow::bail!("no session could log in: {error}");
    }
    let line = ctx
        .line("idle")
        .int("n", p.n)
        .int("held", held)
        .int("failed", p.n - held)
        .int("dropped_during_hold", dropped)
        .num("setup_seconds", up_secs)
        .num("logins_per_s", rate(held, up_secs))
        .num("login_p99_ms", ms(s.p99))
        .opt_num("server_rss_before_kib", before.rss_kib.map(|v| v as f64))
        .opt_num("server_rss_after_kib", after.rss_kib.map(|v| v as f64))
        .opt_num("server_rss_end_kib", end.rss_kib.map(|v| v as f64))
        .opt_num("server_kib_per_session", rss_per)
        .opt_num("server_login_cpu_s", login_cpu)
        .num(
            "client_kib_per_session",
            if held > 0 {
                (self_rss_after as f64 - self_rss_before as f64) / held as f64
            } else {
                0.0
            },
        )
        .str("first_error", &error)
        .finish();
    let human = format!(
        "idle [{}]: {held}/{} sessions up in {:.1} s ({:.0}/s), held {} s, {dropped} dropped; server RSS {} -> {} KiB = {} per session{}",
        ctx.label,
        p.n,
        up_secs,
        rate(held, up_secs),
        p.hold,
        before.rss_kib.map(|v| v.to_string()).unwrap_or("?".into()),
        after.rss_kib.map(|v| v.to_string()).unwrap_or("?".into()),
        rss_per
            .map(|v| format!("{v:.1} KiB"))
            .unwrap_or("? (give --server-pid)".into()),
        if error.is_empty() {
            String::new()
        } else {
            format!("; first error: {error}")
        }
    );
    Ok((line, human))
}
