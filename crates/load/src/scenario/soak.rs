//! `soak`: a mixed load held for a long time, to show that the server's
//! memory and descriptors stay flat and that nothing fails. Exercises
//! RFC 6120 (TLS, SASL, binding, stream close), RFC 6121 (presence,
//! one-to-one messages), XEP-0045 (rooms, fan-out), XEP-0198 (acks,
//! resumption), XEP-0388/XEP-0386/XEP-0484 (SASL2, Bind 2, FAST),
//! XEP-0313 with XEP-0059 (archive queries, paging), XEP-0359 (stanza
//! ids) and XEP-0363 (HTTP upload, RFC 9112 PUT and GET over TLS).
//!
//! For `--duration` seconds, all at once:
//!
//! - `--chatters` sessions stay online, in pairs that send each other
//!   messages (`--chat-rate` in total), every session in one of `--rooms`
//!   rooms where members post (`--muc-rate` in total) to everyone;
//! - `--phones` of them are phones: they drop their connection every
//!   `--drop-every` seconds on average (closed, or left open as after a
//!   change of network), stay away up to `--away-max` seconds, and resume
//!   with a FAST token and an inline `<resume/>`;
//! - short sessions of other accounts log in (`--login-rate`), stay a
//!   while and log out;
//! - sessions query their archive (`--mam-rate`) and upload files
//!   (`--upload-rate`).
//!
//! Every message names the sessions that must receive it; what has not
//! arrived after `--deliver-timeout` seconds is an error, as is a
//! duplicate, a failed query, upload, login, logout or resumption. Every
//! `--interval` seconds a line: server memory (VmRSS, split into anonymous
//! and file pages), open descriptors, CPU, sessions, operations, errors,
//! latency percentiles per kind over the interval. At the end one JSON
//! object with the run's figures and the series of samples.

mod client;
mod http;
mod ops;
mod tally;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::client::{Client, Link};
use self::tally::{body, Expect, Kind, Op, Pending, Tally, OPS};
use super::{metrics, wait_until, Ctx};
use crate::json::Line;
use crate::stats::{ms, Summary};
use crate::sys;
use crate::xmpp::escape;

pub struct Params {
    pub duration: u64,
    pub interval: u64,
    /// Seconds between two readings of the server's memory and descriptors.
    pub sample_every: u64,
    /// Seconds after which the memory is taken as the working set
    /// (default: a tenth of the run).
    pub warmup: Option<u64>,
    pub chatters: u64,
    pub phones: u64,
    pub rooms: u64,
    /// One-to-one messages per second, all sessions together.
    pub chat_rate: f64,
    /// Groupchat messages per second, all rooms together.
    pub muc_rate: f64,
    pub body_size: usize,
    /// Short sessions started per second.
    pub login_rate: f64,
    pub churn_accounts: u64,
    pub hold_min: f64,
    pub hold_max: f64,
    /// Archive query pairs (lookup, page) per second.
    pub mam_rate: f64,
    pub mam_page: usize,
    pub upload_rate: f64,
    pub upload_min: usize,
    pub upload_max: usize,
    /// The upload service (default `upload.<domain>`).
    pub upload_service: Option<String>,
    pub drop_every: f64,
    pub away_max: f64,
    pub deliver_timeout: u64,
    /// Seconds to wait, after every client left, for a last reading.
    pub idle_wait: u64,
    pub room_prefix: String,
    pub seed: u64,
}

impl Params {
    /// A tenth of the run, but at least three minutes (or half a short
    /// run): the first minutes bring every account's first login, the
    /// archive's page cache filling up and the allocator's first peak.
    fn warmup(&self) -> u64 {
        self.warmup
            .unwrap_or((self.duration / 10).max(180.min(self.duration / 2)))
            .clamp(1, self.duration.saturating_sub(1).max(1))
    }
}

/// What every task of the run shares.
pub struct Shared {
    pub ctx: Arc<Ctx>,
    pub tally: Tally,
    pub expect: Expect,
    /// Per chatter: bumped when its connection drops and again when it
    /// is back, so that deliveries spanning either are told apart.
    epochs: Vec<AtomicU64>,
    /// Short sessions online.
    pub churn_online: AtomicU64,
}

impl Shared {
    pub fn epoch(&self, i: usize) -> u64 {
        self.epochs.get(i).map_or(0, |e| e.load(Ordering::Relaxed))
    }

    pub fn bump_epoch(&self, i: usize) {
        if let Some(e) = self.epochs.get(i) {
            e.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// SplitMix64: reproducible choices without a dependency.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Chatter `i` talks with `i ^ 1` and sits in room `(i / 2) % rooms`.
/// Phones are the odd member of the first pairs (partnered with a
/// desktop), then, if more are asked for, the even one.
fn is_phone(i: u64, chatters: u64, phones: u64) -> bool {
    let pairs = chatters / 2;
    if i % 2 == 1 {
        i / 2 < phones
    } else {
        i / 2 < phones.saturating_sub(pairs)
    }
}

fn room_of(i: u64, rooms: u64) -> Option<u64> {
    (rooms > 0).then(|| (i / 2) % rooms)
}

/// Call `each` `rate` times a second until `stop` (catching up at most
/// 100 at a time after a stall).
async fn pace(rate: f64, mut stop: watch::Receiver<bool>, mut each: impl FnMut()) {
    if rate <= 0.0 {
        let _ = stop.wait_for(|s| *s).await;
        return;
    }
    let period = Duration::from_secs_f64((1.0 / rate).clamp(0.002, 1.0));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let n = crate::stats::due(rate, start.elapsed().as_secs_f64(), done, 100);
        for _ in 0..n {
            each();
            done += 1;
        }
    }
}

/// A connected chatter chosen at random, among those `ok` accepts.
fn pick(clients: &[Arc<Client>], rng: &mut Rng, ok: impl Fn(&Client) -> bool) -> Option<usize> {
    let n = clients.len();
    let start = rng.below(n as u64) as usize;
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| clients[i].is_connected() && ok(&clients[i]))
}

/// Spawn into `set` unless `limit` tasks are running already (counted
/// as a backlog error of `what`: the server is not keeping up).
fn spawn_bounded<F>(shared: &Shared, set: &mut JoinSet<()>, limit: usize, what: &str, f: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    while set.try_join_next().is_some() {}
    if set.len() >= limit {
        shared.tally.error(
            &format!("{what}:backlog"),
            &format!("{limit} still running when the next was due"),
        );
        return;
    }
    set.spawn(f);
}

async fn chat_driver(
    shared: Arc<Shared>,
    clients: Arc<Vec<Arc<Client>>>,
    p: Arc<Params>,
    stop: watch::Receiver<bool>,
) {
    let mut rng = Rng::new(p.seed ^ 0xc4a7);
    pace(p.chat_rate, stop, || {
        let Some(i) = pick(&clients, &mut rng, |_| true) else {
            return;
        };
        let c = &clients[i];
        let to = &clients[c.partner];
        let seq = c.seq.fetch_add(1, Ordering::Relaxed);
        let now = shared.ctx.now_us();
        let key = (to.idx, c.idx, seq);
        shared.expect.insert(
            key,
            Pending {
                sent_us: now,
                kind: Kind::Chat,
                sender_epoch: shared.epoch(c.idx),
                receiver_epoch: shared.epoch(to.idx),
            },
        );
        let stanza = format!(
            "<message to='{}' type='chat' id='{}'><body>{}</body></message>",
            escape(&to.bare),
            c.new_id("m"),
            body(Kind::Chat, c.idx, seq, now, p.body_size)
        );
        if !c.send(stanza) {
            shared.expect.remove(&key);
        }
    })
    .await;
}

async fn muc_driver(
    shared: Arc<Shared>,
    clients: Arc<Vec<Arc<Client>>>,
    p: Arc<Params>,
    stop: watch::Receiver<bool>,
) {
    let rooms = p.rooms.max(1) as usize;
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); rooms];
    for c in clients.iter() {
        if let Some(r) = room_of(c.idx as u64, p.rooms) {
            members[r as usize].push(c.idx);
        }
    }
    let mut rng = Rng::new(p.seed ^ 0x6c0c);
    let mut next_room = 0usize;
    pace(if p.rooms > 0 { p.muc_rate } else { 0.0 }, stop, || {
        let r = next_room % rooms;
        next_room += 1;
        let here = &members[r];
        if here.is_empty() {
            return;
        }
        let start = rng.below(here.len() as u64) as usize;
        let Some(i) = (0..here.len())
            .map(|k| here[(start + k) % here.len()])
            .find(|&i| clients[i].is_connected())
        else {
            return;
        };
        let c = &clients[i];
        let Some(room) = &c.room else { return };
        let seq = c.seq.fetch_add(1, Ordering::Relaxed);
        let now = shared.ctx.now_us();
        let sender_epoch = shared.epoch(c.idx);
        for &m in here {
            shared.expect.insert(
                (m, c.idx, seq),
                Pending {
                    sent_us: now,
                    kind: Kind::Muc,
                    sender_epoch,
                    receiver_epoch: shared.epoch(m),
                },
            );
        }
        let stanza = format!(
            "<message to='{}' type='groupchat' id='{}'><body>{}</body></message>",
            escape(room),
            c.new_id("g"),
            body(Kind::Muc, c.idx, seq, now, p.body_size)
        );
        if !c.send(stanza) {
            for &m in here {
                shared.expect.remove(&(m, c.idx, seq));
            }
        }
    })
    .await;
}

async fn mam_driver(
    shared: Arc<Shared>,
    clients: Arc<Vec<Arc<Client>>>,
    p: Arc<Params>,
    stop: watch::Receiver<bool>,
) {
    let mut rng = Rng::new(p.seed ^ 0x3a3);
    let mut set = JoinSet::new();
    // Only queries outliving their timeout pile up beyond this.
    let timeout = shared.ctx.target.timeout.as_secs_f64();
    let limit = (p.mam_rate * timeout * 2.0).ceil().max(32.0) as usize;
    pace(p.mam_rate, stop, || {
        let Some(i) = pick(&clients, &mut rng, |c| c.archived().is_some()) else {
            return;
        };
        let f = ops::mam(shared.clone(), clients[i].clone(), p.mam_page.max(1));
        spawn_bounded(&shared, &mut set, limit, "mam", f);
    })
    .await;
    while set.join_next().await.is_some() {}
}

async fn upload_driver(
    shared: Arc<Shared>,
    clients: Arc<Vec<Arc<Client>>>,
    p: Arc<Params>,
    stop: watch::Receiver<bool>,
) {
    let mut rng = Rng::new(p.seed ^ 0x0b10ad);
    let mut set = JoinSet::new();
    // A slot, a PUT and a GET, each within the timeout.
    let timeout = shared.ctx.target.timeout.as_secs_f64();
    let limit = (p.upload_rate * timeout * 3.0).ceil().max(16.0) as usize;
    let service = p
        .upload_service
        .clone()
        .unwrap_or_else(|| format!("upload.{}", shared.ctx.target.domain));
    let tls = match roost_insecure_tls::client_config(&[b"http/1.1"]) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            shared.tally.error("upload:tls_config", &e.to_string());
            return;
        }
    };
    let mut n = 0u64;
    pace(p.upload_rate, stop, || {
        let Some(i) = pick(&clients, &mut rng, |_| true) else {
            return;
        };
        n += 1;
        let (lo, hi) = (p.upload_min.max(1), p.upload_max.max(p.upload_min.max(1)));
        let size = lo + rng.below((hi - lo + 1) as u64) as usize;
        let f = ops::upload(
            shared.clone(),
            clients[i].clone(),
            service.clone(),
            n,
            size,
            tls.clone(),
        );
        spawn_bounded(&shared, &mut set, limit, "upload", f);
    })
    .await;
    while set.join_next().await.is_some() {}
}

async fn churn_driver(shared: Arc<Shared>, p: Arc<Params>, stop: watch::Receiver<bool>) {
    let mut rng = Rng::new(p.seed ^ 0xc1c1);
    let mut set = JoinSet::new();
    // Sessions in flight: those staying, plus slow logins and logouts.
    let slow = 2.0 * shared.ctx.target.timeout.as_secs_f64();
    let limit = (p.login_rate * (p.hold_max + slow) * 1.5).ceil().max(64.0) as usize;
    let mut n = 0u64;
    pace(
        if p.churn_accounts > 0 {
            p.login_rate
        } else {
            0.0
        },
        stop,
        || {
            let account = p.chatters + n % p.churn_accounts;
            let hold = Duration::from_secs_f64(rng.range(p.hold_min, p.hold_max.max(p.hold_min)));
            let f = ops::churn(shared.clone(), account, n, n % 2 == 1, hold);
            n += 1;
            spawn_bounded(&shared, &mut set, limit, "login", f);
        },
    )
    .await;
    while set.join_next().await.is_some() {}
}

/// Deliveries not made within the timeout are errors.
async fn sweeper(
    shared: Arc<Shared>,
    clients: Arc<Vec<Arc<Client>>>,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let cutoff = shared
            .ctx
            .now_us()
            .saturating_sub(timeout.as_micros() as u64);
        report_lost(&shared, &clients, shared.expect.expire(cutoff), timeout);
    }
}

fn report_lost(
    shared: &Shared,
    clients: &[Arc<Client>],
    lost: Vec<(tally::Key, Pending)>,
    timeout: Duration,
) {
    for ((to, from, seq), p) in lost {
        shared.tally.error(
            &format!("{}:lost", p.kind.name()),
            &format!(
                "message {seq} of {} to {} not received within {} s",
                clients[from].bare,
                clients[to].bare,
                timeout.as_secs()
            ),
        );
    }
}

// --- measuring the server -------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Proc {
    rss: Option<u64>,
    anon: Option<u64>,
    file: Option<u64>,
    fds: Option<u64>,
    cpu_s: Option<f64>,
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn proc_sample(pid: Option<u32>) -> Proc {
    let Some(pid) = pid else {
        return Proc::default();
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    Proc {
        rss: status_kib(&status, "VmRSS"),
        anon: status_kib(&status, "RssAnon"),
        file: status_kib(&status, "RssFile"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|d| d.count() as u64),
        cpu_s: sys::cpu_seconds(pid).ok(),
    }
}

struct Sample {
    t: f64,
    tag: &'static str,
    proc: Proc,
    /// Server CPU since the previous sample, % of one core.
    cpu_pct: Option<f64>,
    load_cpu_pct: f64,
    /// The machine's load average (1 min).
    loadavg: Option<f64>,
    sessions: u64,
    srv_sessions: Option<f64>,
    srv_conns: Option<f64>,
    srv_accounts: Option<f64>,
    ops: u64,
    errors: u64,
    awaited: usize,
    window: Vec<(Op, Summary)>,
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "?".into())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

impl Sample {
    fn human(&self, label: &str) -> String {
        let lat: Vec<String> = self
            .window
            .iter()
            .filter(|(_, s)| s.count > 0)
            .map(|(op, s)| {
                format!(
                    "{} {}x {:.1}/{:.1}/{:.1}",
                    op.name(),
                    s.count,
                    ms(s.p50),
                    ms(s.p99),
                    ms(s.max)
                )
            })
            .collect();
        format!(
            "soak [{label}] {:>6.0} s{}: rss {} MiB (anon {}, file {}), fds {}, cpu {} % (load {:.0} %, loadavg {}), sessions {} (server {}, account tasks {}), ops {}, errors {}, awaited {} | {} (ms p50/p99/max)",
            self.t,
            if self.tag.is_empty() { String::new() } else { format!(" [{}]", self.tag) },
            mib(self.proc.rss),
            mib(self.proc.anon),
            mib(self.proc.file),
            opt(self.proc.fds),
            self.cpu_pct.map(|c| format!("{c:.1}")).unwrap_or_else(|| "?".into()),
            self.load_cpu_pct,
            self.loadavg.map_or("?".to_string(), |l| format!("{l:.2}")),
            self.sessions,
            opt(self.srv_sessions),
            opt(self.srv_accounts),
            self.ops,
            self.errors,
            self.awaited,
            lat.join(", ")
        )
    }

    fn json(&self) -> String {
        let mut l = Line::new()
            .num("t_s", self.t)
            .str("tag", self.tag)
            .opt_num("rss_kib", self.proc.rss.map(|v| v as f64))
            .opt_num("rss_anon_kib", self.proc.anon.map(|v| v as f64))
            .opt_num("rss_file_kib", self.proc.file.map(|v| v as f64))
            .opt_num("fds", self.proc.fds.map(|v| v as f64))
            .opt_num("server_cpu_pct", self.cpu_pct)
            .num("load_cpu_pct", self.load_cpu_pct)
            .opt_num("loadavg", self.loadavg)
            .int("sessions", self.sessions)
            .opt_num("server_sessions", self.srv_sessions)
            .opt_num("server_connections", self.srv_conns)
            .opt_num("server_account_tasks", self.srv_accounts)
            .int("ops", self.ops)
            .int("errors", self.errors)
            .int("awaited", self.awaited as u64);
        for (op, s) in &self.window {
            if s.count > 0 {
                l = l
                    .int(&format!("{}_count", op.name()), s.count)
                    .num(&format!("{}_p50_ms", op.name()), ms(s.p50))
                    .num(&format!("{}_p99_ms", op.name()), ms(s.p99))
                    .num(&format!("{}_max_ms", op.name()), ms(s.max));
            }
        }
        l.finish()
    }
}

fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The server's gauges of sessions, connections and account tasks, when
/// `--metrics` is given.
async fn gauges(ctx: &Ctx) -> (Option<f64>, Option<f64>, Option<f64>) {
    match metrics(ctx).await {
        Some(m) => (
            m.get("roost_sessions").copied(),
            m.get("roost_connections").copied(),
            m.get("roost_account_tasks").copied(),
        ),
        None => (None, None, None),
    }
}

/// A reading of the server's memory and descriptors.
#[derive(Debug, Clone, Copy)]
struct Point {
    t: f64,
    rss: Option<u64>,
    anon: Option<u64>,
    fds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    median: Option<u64>,
    peak: Option<u64>,
}

/// Median and peak of the readings taken from `from` to `to` seconds.
fn window_stats(points: &[Point], from: f64, to: f64, f: impl Fn(&Point) -> Option<u64>) -> Stats {
    let mut v: Vec<u64> = points
        .iter()
        .filter(|p| p.t + 0.5 >= from && p.t <= to + 0.5)
        .filter_map(f)
        .collect();
    v.sort_unstable();
    Stats {
        median: v.get(v.len() / 2).copied(),
        peak: v.last().copied(),
    }
}

/// Least-squares slope of `(seconds, value)` pairs, per hour.
fn slope_per_hour(xy: &[(f64, f64)]) -> Option<f64> {
    if xy.len() < 3 {
        return None;
    }
    let n = xy.len() as f64;
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx * 3600.0)
}

pub async fn run(ctx: Arc<Ctx>, p: Params) -> anyhow::Result<(String, String)> {
    if p.chatters < 2 || p.chatters % 2 == 1 {
        anyhow::bail!("--chatters must be even and at least 2");
    }
    if p.phones > p.chatters {
        anyhow::bail!("--phones must be at most --chatters");
    }
    if p.duration == 0 || p.interval == 0 {
        anyhow::bail!("--duration and --interval must be positive");
    }
    let p = Arc::new(p);
    let warmup = p.warmup();
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        tally: Tally::default(),
        expect: Expect::default(),
        epochs: (0..p.chatters).map(|_| AtomicU64::new(0)).collect(),
        churn_online: AtomicU64::new(0),
    });
    let idle_start = proc_sample(ctx.server_pid);
    let (idle_start_sessions, _, _) = gauges(&ctx).await;

    // --- the steady population --------------------------------------------
    let clients: Arc<Vec<Arc<Client>>> = Arc::new(
        (0..p.chatters)
            .map(|i| {
                let room =
                    room_of(i, p.rooms).map(|r| format!("{}{r}@{}", p.room_prefix, ctx.muc_domain));
                Arc::new(Client::new(
                    i as usize,
                    i,
                    ctx.bare(i),
                    is_phone(i, p.chatters, p.phones),
                    room,
                    (i ^ 1) as usize,
                    ctx.bare(i ^ 1),
                ))
            })
            .collect(),
    );
    let t_setup = Instant::now();
    let (stop_clients_tx, stop_clients) = watch::channel(false);
    // Each room's first member creates it before the others join.
    let creators: Vec<usize> = (0..p.rooms.min(p.chatters / 2))
        .map(|r| (r * 2) as usize)
        .collect();
    let rest: Vec<usize> = (0..p.chatters as usize)
        .filter(|i| !creators.contains(i))
        .collect();
    let sem = Arc::new(Semaphore::new(ctx.setup_concurrency.max(1)));
    let mut links: Vec<(usize, Link)> = Vec::new();
    for group in [creators, rest] {
        let mut tasks = Vec::new();
        for i in group {
            let (shared, c, sem) = (shared.clone(), clients[i].clone(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                let conn = if c.phone {
                    c.phone_login(&shared).await
                } else {
                    c.desktop_login(&shared).await
                };
                conn.map(|conn| (c.idx, c.attach(&shared, conn, None)))
                    .map_err(|e| anyhow::anyhow!("setup of {}: {e:#}", c.bare))
            }));
        }
        for t in tasks {
            links.push(t.await.map_err(|e| anyhow::anyhow!("setup task: {e}"))??);
        }
    }
    let mut handles = Vec::new();
    for (i, link) in links {
        let (shared, c, stop) = (shared.clone(), clients[i].clone(), stop_clients.clone());
        if c.phone {
            let rng = Rng::new(p.seed ^ (i as u64).wrapping_mul(0x9e37));
            let (every, away) = (p.drop_every, p.away_max);
            handles.push(tokio::spawn(
                c.run_phone(shared, link, stop, every, away, rng),
            ));
        } else {
            handles.push(tokio::spawn(c.run_desktop(shared, link, stop)));
        }
    }
    let setup_secs = t_setup.elapsed().as_secs_f64();
    eprintln!(
        "soak [{}]: {} sessions ({} phones) in {} rooms up in {setup_secs:.1} s; running {} s, warm-up {warmup} s",
        ctx.label, p.chatters, p.phones, p.rooms, p.duration
    );
    // Let the joins' presences settle.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // --- the run ----------------------------------------------------------------
    let (stop_tx, stop) = watch::channel(false);
    let (sweep_stop_tx, sweep_stop) = watch::channel(false);
    let timeout = Duration::from_secs(p.deliver_timeout.max(1));
    let sweep = tokio::spawn(sweeper(
        shared.clone(),
        clients.clone(),
        timeout,
        sweep_stop,
    ));
    shared.tally.take_window();
    let t0 = Instant::now();
    let drivers = vec![
        tokio::spawn(chat_driver(
            shared.clone(),
            clients.clone(),
            p.clone(),
            stop.clone(),
        )),
        tokio::spawn(muc_driver(
            shared.clone(),
            clients.clone(),
            p.clone(),
            stop.clone(),
        )),
        tokio::spawn(mam_driver(
            shared.clone(),
            clients.clone(),
            p.clone(),
            stop.clone(),
        )),
        tokio::spawn(upload_driver(
            shared.clone(),
            clients.clone(),
            p.clone(),
            stop.clone(),
        )),
        tokio::spawn(churn_driver(shared.clone(), p.clone(), stop.clone())),
    ];
    // Readings every `sample_every` seconds; a report line at every
    // interval, at the end of the warm-up and at the end.
    let sample_every = p.sample_every.max(1);
    let mut times: Vec<(u64, &'static str, bool)> = (1..)
        .map(|k| k * sample_every)
        .take_while(|&t| t < p.duration)
        .map(|t| (t, "", false))
        .chain(
            (1..)
                .map(|k| k * p.interval)
                .take_while(|&t| t < p.duration)
                .map(|t| (t, "", true)),
        )
        .collect();
    times.push((warmup, "warm-up", true));
    times.push((p.duration, "end", true));
    times.sort_by_key(|&(t, tag, print)| (t, !print, tag.is_empty()));
    times.dedup_by_key(|m| m.0);
    let mut series: Vec<Sample> = Vec::new();
    let mut points: Vec<Point> = Vec::new();
    let mut prev = (
        0.0f64,
        proc_sample(ctx.server_pid).cpu_s,
        sys::self_cpu_seconds(),
    );
    let run_cpu0 = prev.1;
    for (t, tag, print) in times {
        tokio::time::sleep_until(t0 + Duration::from_secs(t)).await;
        let now = t0.elapsed().as_secs_f64();
        let proc = proc_sample(ctx.server_pid);
        points.push(Point {
            t: now,
            rss: proc.rss,
            anon: proc.anon,
            fds: proc.fds,
        });
        if !print {
            continue;
        }
        let (srv_sessions, srv_conns, srv_accounts) = gauges(&ctx).await;
        let load_cpu = sys::self_cpu_seconds();
        let dt = (now - prev.0).max(1e-3);
        let s = Sample {
            t: now,
            tag,
            proc,
            cpu_pct: match (prev.1, proc.cpu_s) {
                (Some(a), Some(b)) => Some((b - a) * 100.0 / dt),
                _ => None,
            },
            load_cpu_pct: (load_cpu - prev.2) * 100.0 / dt,
            loadavg: loadavg(),
            sessions: clients.iter().filter(|c| c.is_connected()).count() as u64
                + shared.churn_online.load(Ordering::Relaxed),
            srv_sessions,
            srv_conns,
            srv_accounts,
            ops: shared.tally.ops_total(),
            errors: shared.tally.errors_total(),
            awaited: shared.expect.len(),
            window: shared.tally.take_window(),
        };
        eprintln!("{}", s.human(&ctx.label));
        prev = (now, proc.cpu_s, load_cpu);
        series.push(s);
    }
    let run_secs = t0.elapsed().as_secs_f64();
    let run_cpu = match (run_cpu0, series.last().and_then(|s| s.proc.cpu_s)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };

    // --- winding down: finish what is in flight, log everyone out ------------
    let _ = stop_tx.send(true);
    for d in drivers {
        let _ = d.await;
    }
    let drained = wait_until(timeout, || shared.expect.len() == 0).await;
    let _ = sweep_stop_tx.send(true);
    let _ = sweep.await;
    report_lost(&shared, &clients, shared.expect.expire(u64::MAX), timeout);
    let _ = stop_clients_tx.send(true);
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(60), h).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_end = proc_sample(ctx.server_pid);
    // Later, what the allocator kept (jemalloc without its background
    // thread purges only when something allocates).
    tokio::time::sleep(Duration::from_secs(p.idle_wait)).await;
    let idle_later = proc_sample(ctx.server_pid);
    let (idle_end_sessions, _, idle_end_accounts) = gauges(&ctx).await;
    if let Some(n) = idle_end_sessions.filter(|&n| n > idle_start_sessions.unwrap_or(0.0)) {
        shared.tally.error(
            "server:sessions_after_run",
            &format!("the server still counts {n} sessions 3 s after every client left"),
        );
    }

    // --- report -------------------------------------------------------------------
    // The working set right after the warm-up and at the end: the
    // readings of the tenth of the run that follows the warm-up and of the
    // last tenth (median and peak; RSS swings with bursts and with the
    // allocator handing pages back, single readings mislead).
    let win = (warmup as f64)
        .max(2.0 * sample_every as f64)
        .min((p.duration - warmup) as f64 / 2.0);
    let dur = p.duration as f64;
    let (warm_from, warm_to) = (warmup as f64, warmup as f64 + win);
    let (end_from, end_to) = ((dur - win).max(warm_from), dur);
    let rss_warm = window_stats(&points, warm_from, warm_to, |p| p.rss);
    let rss_end = window_stats(&points, end_from, end_to, |p| p.rss);
    let anon_warm = window_stats(&points, warm_from, warm_to, |p| p.anon);
    let anon_end = window_stats(&points, end_from, end_to, |p| p.anon);
    let fds_warm = window_stats(&points, warm_from, warm_to, |p| p.fds);
    let fds_end = window_stats(&points, end_from, end_to, |p| p.fds);
    let after_warm: Vec<&Point> = points.iter().filter(|p| p.t + 0.5 >= warm_from).collect();
    let rss_max = after_warm.iter().filter_map(|p| p.rss).max();
    let fds_max = after_warm.iter().filter_map(|p| p.fds).max();
    let rss_slope = slope_per_hour(
        &after_warm
            .iter()
            .filter_map(|p| p.rss.map(|r| (p.t, r as f64 / 1024.0)))
            .collect::<Vec<_>>(),
    );
    let f = |v: Option<u64>| v.map(|v| v as f64);
    let mut line = ctx
        .line("soak")
        .int("duration_s", p.duration)
        .num("run_s", run_secs)
        .int("warmup_s", warmup)
        .int("interval_s", p.interval)
        .int("chatters", p.chatters)
        .int("phones", p.phones)
        .int("rooms", p.rooms)
        .num("chat_rate", p.chat_rate)
        .num("muc_rate", p.muc_rate)
        .int("body_size", p.body_size as u64)
        .num("login_rate", p.login_rate)
        .int("churn_accounts", p.churn_accounts)
        .num("mam_rate", p.mam_rate)
        .num("upload_rate", p.upload_rate)
        .int("upload_min", p.upload_min as u64)
        .int("upload_max", p.upload_max as u64)
        .num("drop_every_s", p.drop_every)
        .num("away_max_s", p.away_max)
        .int("deliver_timeout_s", p.deliver_timeout)
        .int("seed", p.seed)
        .num("setup_s", setup_secs)
        .int("sample_every_s", sample_every)
        .num("warm_window_from_s", warm_from)
        .num("warm_window_to_s", warm_to)
        .num("end_window_from_s", end_from)
        .opt_num("rss_idle_start_kib", f(idle_start.rss))
        .opt_num("rss_warm_kib", f(rss_warm.median))
        .opt_num("rss_warm_peak_kib", f(rss_warm.peak))
        .opt_num("rss_end_kib", f(rss_end.median))
        .opt_num("rss_end_peak_kib", f(rss_end.peak))
        .opt_num("rss_max_kib", f(rss_max))
        .opt_num("rss_slope_mib_per_h", rss_slope)
        .opt_num("rss_idle_end_kib", f(idle_end.rss))
        .int("idle_wait_s", p.idle_wait)
        .opt_num("rss_idle_later_kib", f(idle_later.rss))
        .opt_num("fds_idle_later", f(idle_later.fds))
        .opt_num("rss_anon_warm_kib", f(anon_warm.median))
        .opt_num("rss_anon_end_kib", f(anon_end.median))
        .opt_num("fds_idle_start", f(idle_start.fds))
        .opt_num("fds_warm", f(fds_warm.median))
        .opt_num("fds_end", f(fds_end.median))
        .opt_num("fds_max", f(fds_max))
        .opt_num("fds_idle_end", f(idle_end.fds))
        .opt_num("server_cpu_s", run_cpu)
        .opt_num(
            "server_cpu_pct",
            run_cpu.map(|c| c * 100.0 / run_secs.max(1e-3)),
        )
        .opt_num("server_sessions_after", idle_end_sessions)
        .opt_num("server_account_tasks_after", idle_end_accounts)
        .str("drained", if drained { "yes" } else { "no" })
        .int("ops_total", shared.tally.ops_total())
        .int("errors_total", shared.tally.errors_total());
    let mut table = Vec::new();
    for op in OPS {
        let s = shared.tally.total(op);
        let n = op.name();
        line = line
            .int(&format!("{n}_count"), s.count)
            .num(&format!("{n}_p50_ms"), ms(s.p50))
            .num(&format!("{n}_p90_ms"), ms(s.p90))
            .num(&format!("{n}_p99_ms"), ms(s.p99))
            .num(&format!("{n}_max_ms"), ms(s.max));
        // The slowest one: who, and when (seconds from the start of the load).
        let slowest = shared
            .tally
            .slowest(op)
            .map(|w| {
                let at = w.at.saturating_duration_since(t0.into_std()).as_secs_f64();
                let phase = if at > run_secs { ", winding down" } else { "" };
                format!("{} at {at:.0} s{phase}", w.who)
            })
            .unwrap_or_default();
        line = line.str(&format!("{n}_slowest"), &slowest);
        table.push(format!(
            "  {n:<12} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>10.2}  {slowest}",
            s.count,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max)
        ));
    }
    let errors = shared.tally.errors();
    line = line.str(
        "error_kinds",
        &errors
            .iter()
            .map(|(k, n, _)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join("; "),
    );
    for (k, n, _) in &errors {
        line = line.int(&format!("errors.{k}"), *n);
    }
    let series_json: Vec<String> = series.iter().map(|s| s.json()).collect();
    let points_json: Vec<String> = points
        .iter()
        .map(|p| {
            let n = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
            format!("[{:.1},{},{},{}]", p.t, n(p.rss), n(p.anon), n(p.fds))
        })
        .collect();
    let mut line = line.finish();
    line.pop();
    line.push_str(",\"series\":[");
    line.push_str(&series_json.join(","));
    line.push_str(
        "],\"readings_fields\":[\"t_s\",\"rss_kib\",\"rss_anon_kib\",\"fds\"],\"readings\":[",
    );
    line.push_str(&points_json.join(","));
    line.push_str("]}");

    let mut human = format!(
        "soak [{}]: {} s with {} sessions ({} phones) in {} rooms; server RSS (median/peak) {}/{} MiB after the warm-up ({warm_from:.0}-{warm_to:.0} s), {}/{} MiB at the end ({end_from:.0}-{end_to:.0} s), {} MiB max, trend {} MiB/h, {} MiB idle after ({} MiB {} s later); fds {} -> {} (idle {} before, {} after); server CPU {}; {} operations, {} errors\n  {:<12} {:>9} {:>9} {:>9} {:>9} {:>10}\n{}",
        ctx.label,
        p.duration,
        p.chatters,
        p.phones,
        p.rooms,
        mib(rss_warm.median),
        mib(rss_warm.peak),
        mib(rss_end.median),
        mib(rss_end.peak),
        mib(rss_max),
        rss_slope
            .map(|s| format!("{s:+.1}"))
            .unwrap_or_else(|| "?".into()),
        mib(idle_end.rss),
        mib(idle_later.rss),
        3 + p.idle_wait,
        opt(fds_warm.median),
        opt(fds_end.median),
        opt(idle_start.fds),
        opt(idle_end.fds),
        run_cpu
            .map(|c| format!("{:.1} % of a core", c * 100.0 / run_secs.max(1e-3)))
            .unwrap_or_else(|| "?".into()),
        shared.tally.ops_total(),
        shared.tally.errors_total(),
        "operation",
        "count",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms (slowest)",
        table.join("\n")
    );
    for (k, n, ex) in &errors {
        human.push_str(&format!("\n  error {k}: {n} (first: {ex})"));
    }
    Ok((line, human))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_pair_with_desktops_and_spread_over_rooms() {
        let phones: Vec<u64> = (0..40).filter(|&i| is_phone(i, 40, 10)).collect();
        assert_eq!(phones.len(), 10);
        assert!(phones.iter().all(|&i| !is_phone(i ^ 1, 40, 10)));
        let mut rooms: Vec<u64> = phones.iter().filter_map(|&i| room_of(i, 4)).collect();
        rooms.sort_unstable();
        rooms.dedup();
        assert_eq!(rooms, vec![0, 1, 2, 3]);
        assert_eq!((0..40).filter(|&i| is_phone(i, 40, 30)).count(), 30);
        assert_eq!(room_of(5, 0), None);
    }

    #[test]
    fn windows_give_median_and_peak_and_trends_are_per_hour() {
        let pts: Vec<Point> = (0..10)
            .map(|i| Point {
                t: i as f64 * 10.0,
                rss: Some(100 + i),
                anon: None,
                fds: Some(5),
            })
            .collect();
        let w = window_stats(&pts, 20.0, 60.0, |p| p.rss);
        assert_eq!(
            w,
            Stats {
                median: Some(104),
                peak: Some(106)
            }
        );
        assert_eq!(window_stats(&pts, 20.0, 60.0, |p| p.anon).peak, None);
        let xy: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 60.0, 50.0 + i as f64))
            .collect();
        assert!((slope_per_hour(&xy).unwrap() - 60.0).abs() < 1e-9);
        assert_eq!(slope_per_hour(&xy[..2]), None);
    }

    #[test]
    fn rng_is_reproducible_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.range(2.0, 3.0);
            assert_eq!(x, b.range(2.0, 3.0));
            assert!((2.0..3.0).contains(&x));
            assert!(a.below(10) < 10);
            b.below(10);
        }
        assert_eq!(a.below(0), 0);
    }

    #[test]
    fn proc_status_fields_in_kib() {
        let s = "Name:\troost\nVmRSS:\t  5000 kB\nRssAnon:\t  3000 kB\nRssFile:\t  1900 kB\n";
        assert_eq!(status_kib(s, "VmRSS"), Some(5000));
        assert_eq!(status_kib(s, "RssAnon"), Some(3000));
        assert_eq!(status_kib(s, "RssFile"), Some(1900));
        assert_eq!(status_kib(s, "RssShmem"), None);
        let me = proc_sample(Some(std::process::id()));
        assert!(me.rss.unwrap() > 0 && me.fds.unwrap() > 0);
    }
}
