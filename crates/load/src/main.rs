//! roost-load: drives any XMPP server over c2s (loopback benchmarks) and
//! prints one JSON line per result on stdout and a human summary on
//! stderr. See `bench/README.md` and `docs/benchmarks.md`.

mod json;
mod scenario;
mod stats;
mod sys;
mod xmpp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::time::Instant;

use scenario::Ctx;
use xmpp::{Mech, Target, TlsMode};

#[derive(Parser)]
#[command(
    name = "roost-load",
    version,
    about = "Load generator for XMPP servers (c2s): logins, idle sessions, chat, MUC fan-out, MUC joins, soak"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Common {
    /// Server's client port (loopback); several, comma-separated, for the
    /// nodes of a cluster: connections go to each in turn.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:5222",
        value_delimiter = ','
    )]
    server: Vec<SocketAddr>,
    /// The XMPP domain the accounts live on.
    #[arg(long, global = true, default_value = "localhost")]
    domain: String,
    /// The MUC service's domain (default: conference.<domain>).
    #[arg(long, global = true)]
    muc: Option<String>,
    #[arg(long, global = true, value_enum, default_value = "starttls")]
    tls: TlsMode,
    #[arg(long, global = true, value_enum, default_value = "SCRAM-SHA-1")]
    mech: Mech,
    /// User name pattern; `{n}` is the account number.
    #[arg(long, global = true, default_value = "load{n}")]
    user: String,
    /// Password pattern; `{n}` is the account number.
    #[arg(long, global = true, default_value = "pw-{n}")]
    password: String,
    /// Number of the first account.
    #[arg(long, global = true, default_value_t = 1)]
    first: u64,
    /// Create the accounts a scenario needs with XEP-0077 first.
    #[arg(long, global = true)]
    register: bool,
    /// The server's pid, for memory (VmRSS) and CPU (utime+stime) from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Prometheus endpoint with Roost's counters: host:port[/path].
    #[arg(long, global = true)]
    metrics: Option<String>,
    /// Name of the server in the results.
    #[arg(long, global = true, default_value = "server")]
    label: String,
    /// Seconds any single step (connect, login, join) may take.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    /// Logins or registrations in flight during setup.
    #[arg(long, global = true, default_value_t = 32)]
    setup_concurrency: usize,
    /// Worker threads of the load generator.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create accounts 0..n with XEP-0077 in-band registration.
    Register {
        #[arg(short, default_value_t = 100)]
        n: u64,
    },
    /// N logins at concurrency C: connect, TLS, SASL, bind, initial presence.
    Login {
        #[arg(short, default_value_t = 1000)]
        n: u64,
        #[arg(short, long, default_value_t = 50)]
        concurrency: usize,
        /// Accounts cycled through (default: n).
        #[arg(long)]
        accounts: Option<u64>,
        /// Skip the untimed first login of every account. The warm-up
        /// lets the tool keep each account's SCRAM SaltedPassword, as real
        /// clients do, so the timed logins measure the server rather than
        /// the tool's own PBKDF2 on the shared cores.
        #[arg(long)]
        no_warm_up: bool,
    },
    /// Hold N authenticated sessions; server memory per session.
    Idle {
        #[arg(short, default_value_t = 1000)]
        n: u64,
        #[arg(short, long, default_value_t = 100)]
        concurrency: usize,
        /// Seconds to hold the sessions.
        #[arg(long, default_value_t = 5)]
        hold: u64,
        /// Seconds to let the server settle before sampling memory.
        #[arg(long, default_value_t = 2)]
        settle: u64,
    },
    /// One-to-one messages between pairs at a target rate.
    Chat {
        #[arg(long, default_value_t = 50)]
        pairs: u64,
        /// Messages per second in total.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 5)]
        drain: u64,
        /// Federation: the second account of each pair lives on this
        /// server (c2s address), so every message crosses server-to-server.
        #[arg(long, requires = "peer_domain")]
        peer_server: Option<SocketAddr>,
        /// The domain of `--peer-server`'s accounts.
        #[arg(long, requires = "peer_server")]
        peer_domain: Option<String>,
    },
    /// Groupchat fan-out: R rooms x U accounts x K sessions, S senders.
    Muc {
        #[arg(long, default_value_t = 5)]
        rooms: u64,
        #[arg(long, default_value_t = 10)]
        users: u64,
        #[arg(long, default_value_t = 2)]
        sessions: u64,
        #[arg(long, default_value_t = 5)]
        senders: u64,
        /// Messages per second, all senders together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 5)]
        drain: u64,
        #[arg(long, default_value = "loadroom")]
        room_prefix: String,
    },
    /// N phones back after losing their network: FAST + inline resumption,
    /// or full SCRAM + bind + presence + rejoin.
    Reconnect {
        #[arg(short, default_value_t = 1000)]
        n: u64,
        #[arg(short, long, default_value_t = 50)]
        concurrency: usize,
        /// Rooms the accounts are spread over (one each).
        #[arg(long, default_value_t = 10)]
        rooms: u64,
        #[arg(long, value_enum, default_value = "fast")]
        mode: scenario::reconnect::Mode,
        #[arg(long, default_value = "reconnectroom")]
        room_prefix: String,
    },
    /// Mixed load for a long time (chat, MUC, logins, archive queries,
    /// uploads, phones resuming): server memory, descriptors, latency and
    /// errors over time. See docs/soak.md.
    Soak(SoakArgs),
    /// Join latency of a first and a later session of the same account.
    Join {
        #[arg(long, default_value_t = 30)]
        samples: u64,
        /// Occupants already in the room besides the owner.
        #[arg(long, default_value_t = 10)]
        background: u64,
        #[arg(long, default_value = "joinbench")]
        room: String,
    },
}

#[derive(Args)]
struct SoakArgs {
    /// Seconds of mixed load.
    #[arg(long, default_value_t = 1800)]
    duration: u64,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Seconds between readings of the server's memory and descriptors.
    #[arg(long, default_value_t = 5)]
    sample_every: u64,
    /// Seconds after which memory counts as the working set (default: a
    /// tenth of the duration, at least 3 minutes or half a shorter run).
    #[arg(long)]
    warmup: Option<u64>,
    /// Sessions online all along, in pairs that chat (even number).
    #[arg(long, default_value_t = 600)]
    chatters: u64,
    /// How many of them are phones (SASL2, stream management, drops and
    /// resumptions).
    #[arg(long, default_value_t = 150)]
    phones: u64,
    /// Rooms the chatters are spread over (each pair in one room).
    #[arg(long, default_value_t = 30)]
    rooms: u64,
    /// One-to-one messages per second, in total.
    #[arg(long, default_value_t = 400.0)]
    chat_rate: f64,
    /// Groupchat messages per second, all rooms together.
    #[arg(long, default_value_t = 50.0)]
    muc_rate: f64,
    /// Bytes of a message body.
    #[arg(long, default_value_t = 120)]
    body_size: usize,
    /// Short sessions (log in, stay, log out) started per second.
    #[arg(long, default_value_t = 30.0)]
    login_rate: f64,
    /// Accounts the short sessions cycle through (numbered after the chatters).
    #[arg(long, default_value_t = 1200)]
    churn_accounts: u64,
    /// Seconds a short session stays, at least and at most.
    #[arg(long, default_value_t = 5.0)]
    hold_min: f64,
    #[arg(long, default_value_t = 30.0)]
    hold_max: f64,
    /// Archive query pairs (a lookup by id, the last page) per second.
    #[arg(long, default_value_t = 40.0)]
    mam_rate: f64,
    /// Messages in a page of the archive.
    #[arg(long, default_value_t = 20)]
    mam_page: usize,
    /// Uploads (slot, PUT, GET) per second.
    #[arg(long, default_value_t = 0.5)]
    upload_rate: f64,
    /// Size of an upload in bytes, at least and at most.
    #[arg(long, default_value_t = 1024)]
    upload_min: usize,
    #[arg(long, default_value_t = 524_288)]
    upload_max: usize,
    /// The upload service's JID (default: upload.<domain>).
    #[arg(long)]
    upload_service: Option<String>,
    /// Mean seconds between two connection drops of a phone.
    #[arg(long, default_value_t = 60.0)]
    drop_every: f64,
    /// Most seconds a phone stays away before it resumes.
    #[arg(long, default_value_t = 8.0)]
    away_max: f64,
    /// Seconds after which a message not received counts as lost.
    #[arg(long, default_value_t = 30)]
    deliver_timeout: u64,
    /// Seconds to wait for a last reading of the idle server after every
    /// client left.
    #[arg(long, default_value_t = 30)]
    idle_wait: u64,
    #[arg(long, default_value = "soak")]
    room_prefix: String,
    /// Seed of the random choices (who sends, sizes, drop times).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl SoakArgs {
    fn params(self) -> scenario::soak::Params {
        scenario::soak::Params {
            duration: self.duration,
            interval: self.interval,
            sample_every: self.sample_every,
            warmup: self.warmup,
            chatters: self.chatters,
            phones: self.phones,
            rooms: self.rooms,
            chat_rate: self.chat_rate,
            muc_rate: self.muc_rate,
            body_size: self.body_size,
            login_rate: self.login_rate,
            churn_accounts: self.churn_accounts,
            hold_min: self.hold_min,
            hold_max: self.hold_max,
            mam_rate: self.mam_rate,
            mam_page: self.mam_page,
            upload_rate: self.upload_rate,
            upload_min: self.upload_min,
            upload_max: self.upload_max,
            upload_service: self.upload_service,
            drop_every: self.drop_every,
            away_max: self.away_max,
            deliver_timeout: self.deliver_timeout,
            idle_wait: self.idle_wait,
            room_prefix: self.room_prefix,
            seed: self.seed,
        }
    }
}

impl Cmd {
    /// Accounts (numbered from 0) the scenario uses.
    fn accounts(&self) -> u64 {
        match self {
            Cmd::Register { n } => *n,
            Cmd::Login { n, accounts, .. } => accounts.unwrap_or(*n),
            Cmd::Idle { n, .. } => *n,
            Cmd::Reconnect { n, .. } => *n,
            Cmd::Chat { pairs, .. } => pairs * 2,
            Cmd::Muc { rooms, users, .. } => rooms * users,
            Cmd::Soak(a) => a.chatters + a.churn_accounts,
            Cmd::Join {
                samples,
                background,
                ..
            } => 1 + background + samples,
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("roost-load: {e:#}");
            std::process::exit(1);
        }
    }
    // Connections still open are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let c = cli.common;
    sys::raise_nofile();
    let peer = match &cli.cmd {
        Cmd::Chat {
            peer_server: Some(addr),
            peer_domain: Some(domain),
            ..
        } => Some((*addr, domain.clone())),
        _ => None,
    };
    let ctx = Arc::new(Ctx {
        target: Target::new(
            c.server[0],
            &c.domain,
            c.tls,
            c.mech,
            Duration::from_secs(c.timeout),
        )
        .with_more(c.server[1..].to_vec()),
        user: c.user,
        password: c.password,
        first: c.first,
        muc_domain: c.muc.unwrap_or_else(|| format!("conference.{}", c.domain)),
        label: c.label,
        server_pid: c.server_pid,
        metrics: c.metrics,
        setup_concurrency: c.setup_concurrency,
        base: Instant::now(),
    });
    // The same accounts, named the same, on the peer server (federation).
    let peer_ctx = peer.map(|(addr, domain)| {
        Arc::new(Ctx {
            target: Target::new(addr, &domain, c.tls, c.mech, Duration::from_secs(c.timeout)),
            user: ctx.user.clone(),
            password: ctx.password.clone(),
            first: ctx.first,
            muc_domain: format!("conference.{domain}"),
            label: ctx.label.clone(),
            server_pid: None,
            metrics: None,
            setup_concurrency: ctx.setup_concurrency,
            base: ctx.base,
        })
    });
    if c.register || matches!(cli.cmd, Cmd::Register { .. }) {
        let n = cli.cmd.accounts();
        if let Some(p) = &peer_ctx {
            p.register(n).await?;
        }
        let t = Instant::now();
        let (created, existed) = ctx.register(n).await?;
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "register [{}]: {created} created, {existed} existed in {secs:.1} s",
            ctx.label
        );
        if matches!(cli.cmd, Cmd::Register { .. }) {
            println!(
                "{}",
                ctx.line("register")
                    .int("created", created)
                    .int("existed", existed)
                    .num("seconds", secs)
                    .finish()
            );
            return Ok(());
        }
    }
    let (line, human) = match cli.cmd {
        Cmd::Register { .. } => unreachable!("handled above"),
        Cmd::Login {
            n,
            concurrency,
            accounts,
            no_warm_up,
        } => {
            scenario::login::run(
                ctx,
                scenario::login::Params {
                    n,
                    concurrency,
                    accounts: accounts.unwrap_or(n),
                    warm_up: !no_warm_up,
                },
            )
            .await?
        }
        Cmd::Idle {
            n,
            concurrency,
            hold,
            settle,
        } => {
            scenario::idle::run(
                ctx,
                scenario::idle::Params {
                    n,
                    concurrency,
                    hold,
                    settle,
                },
            )
            .await?
        }
        Cmd::Chat {
            pairs,
            rate,
            duration,
            drain,
            ..
        } => {
            scenario::chat::run(
                ctx,
                peer_ctx,
                scenario::chat::Params {
                    pairs,
                    rate,
                    duration,
                    drain,
                },
            )
            .await?
        }
        Cmd::Muc {
            rooms,
            users,
            sessions,
            senders,
            rate,
            duration,
            drain,
            room_prefix,
        } => {
            scenario::muc::run(
                ctx,
                scenario::muc::Params {
                    rooms,
                    users,
                    sessions,
                    senders,
                    rate,
                    duration,
                    drain,
                    room_prefix,
                },
            )
            .await?
        }
        Cmd::Reconnect {
            n,
            concurrency,
            rooms,
            mode,
            room_prefix,
        } => {
            scenario::reconnect::run(
                ctx,
                scenario::reconnect::Params {
                    n,
                    concurrency,
                    rooms,
                    mode,
                    room_prefix,
                },
            )
            .await?
        }
        Cmd::Soak(a) => scenario::soak::run(ctx, a.params()).await?,
        Cmd::Join {
            samples,
            background,
            room,
        } => {
            scenario::join::run(
                ctx,
                scenario::join::Params {
                    samples,
                    background,
                    room,
                },
            )
            .await?
        }
    };
    println!("{line}");
    eprintln!("{human}");
    Ok(())
}
