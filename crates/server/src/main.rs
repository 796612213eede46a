//! `roost`: the command line. `serve` runs the server; `user` manages
//! accounts on the same data (also while the server runs); `storage
//! migrate` copies a SQLite database into PostgreSQL; `check-config`
//! validates and prints the effective configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use jid::BareJid;
use roost_server::config::{Config, StorageBackend};

/// jemalloc instead of glibc's malloc: a groupchat fan-out allocates and
/// frees a few small blocks per delivery on different threads, where
/// glibc spent about a sixth of the server's CPU (splitting and merging
/// free chunks). With jemalloc the server used 15 % less CPU per MUC
/// delivery, the same per idle session (10.7 KiB against 10.5 at 10,000
/// sessions), and handed memory back after bursts of logins.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "roost", version, about = "Roost, an XMPP server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// Configuration file (TOML). Without it the embedded defaults apply:
    /// domain `localhost`, data in ./roost-data, listeners on loopback.
    #[arg(long, short = 'c', value_name = "PATH", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the configuration and print the effective settings.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Storage maintenance.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Operate a cluster (`[cluster]` of the configuration names NATS).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
        #[command(flatten)]
        config: ConfigArg,
        /// The NATS server, instead of `[cluster] nats`.
        #[arg(long, value_name = "URL", global = true)]
        nats: Option<String>,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// List the nodes: state, sessions, accounts and the rooms each runs.
    Status,
    /// Move a node's accounts and rooms to the others and ask its clients
    /// to reconnect elsewhere (before upgrading or stopping it).
    Drain {
        /// The node's name (`[cluster] node`).
        node: String,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Copy everything from a SQLite database into an empty PostgreSQL
    /// database, in one transaction. Stop the server first.
    Migrate {
        /// The source, `sqlite:PATH`; default: data_dir/roost.sqlite of the
        /// configuration.
        #[arg(long, value_name = "sqlite:PATH")]
        from: Option<String>,
        /// The target, `postgres:URL`; default: `[storage] url` of the
        /// configuration when its backend is "postgres".
        #[arg(long, value_name = "postgres:URL")]
        to: Option<String>,
        /// Replace whatever the target database holds.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; prompts for the password when none is given.
    Add {
        /// The account's JID, e.g. alice@localhost.
        jid: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Remove an account and everything stored for it.
    Remove { jid: String },
    /// Change an account's password; prompts when none is given.
    Passwd {
        jid: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// List accounts, optionally of one domain.
    List { domain: Option<String> },
    /// List the clients holding FAST login tokens (XEP-0484) for an account.
    Tokens { jid: String },
    /// Revoke an account's FAST tokens: one client's (its user-agent id,
    /// as `tokens` lists it), or all.
    RevokeTokens {
        jid: String,
        #[arg(long)]
        client: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config } => {
            let cfg = Config::load(config.config.as_deref())?;
            print!("{}", cfg.to_toml());
            Ok(())
        }
        Command::User { command, config } => user(command, config),
        Command::Storage { command, config } => storage(command, config),
        Command::Cluster {
            command,
            config,
            nats,
        } => cluster(command, config, nats),
    }
}

fn cluster(command: ClusterCommand, config: ConfigArg, nats: Option<String>) -> anyhow::Result<()> {
    let cfg = Config::load(config.config.as_deref())?;
    let mut cluster = cfg.cluster.clone();
    if let Some(url) = nats {
        cluster.nats = url;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match command {
        ClusterCommand::Status => {
            let nodes = rt.block_on(roost_core::cluster::control::status(&cluster, &cfg.domain))?;
            if nodes.is_empty() {
                bail!("no node of {} answered on {}", cfg.domain, cluster.nats);
            }
            println!(
                "{:<16} {:<9} {:>9} {:>9} {:>6} {:>12}  SEES",
                "NODE", "STATE", "SESSIONS", "ACCOUNTS", "ROOMS", "UNCONFIRMED"
            );
            for n in &nodes {
                println!(
                    "{:<16} {:<9} {:>9} {:>9} {:>6} {:>12}  {}",
                    n.node,
                    n.state,
                    n.sessions,
                    n.accounts,
                    n.rooms.len(),
                    n.unconfirmed,
                    n.sees.join(",")
                );
            }
            for n in nodes.iter().filter(|n| !n.rooms.is_empty()) {
                println!("rooms on {}: {}", n.node, n.rooms.join(" "));
            }
            Ok(())
        }
        ClusterCommand::Drain { node } => {
            if rt.block_on(roost_core::cluster::control::drain(
                &cluster,
                &cfg.domain,
                &node,
            ))? {
                println!("{node} is draining: its accounts and rooms move, its clients reconnect elsewhere");
                Ok(())
            } else {
                bail!("no node named {node} answered on {}", cluster.nats)
            }
        }
    }
}

fn storage(command: StorageCommand, config: ConfigArg) -> anyhow::Result<()> {
    let StorageCommand::Migrate { from, to, force } = command;
    let cfg = Config::load(config.config.as_deref())?;
    let from = match from {
        Some(arg) => roost_server::migrate::parse_source(&arg)?,
        None => cfg.database_path(),
    };
    let to = match (to, &cfg.storage.url) {
        (Some(arg), _) => roost_server::migrate::parse_target(&arg)?,
        (None, Some(url)) if cfg.storage.backend == StorageBackend::Postgres => url.clone(),
        (None, _) => bail!("--to postgres:URL is needed ([storage] names no PostgreSQL database)"),
    };
    println!(
        "copying sqlite:{} to postgres:{}",
        from.display(),
        roost_store::postgres::redact_url(&to)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let counts = rt.block_on(roost_server::migrate::migrate(&from, &to, force))?;
    print!("{counts}");
    println!(
        "copied {} rows in {:.1} s",
        counts.total(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(config: ConfigArg) -> anyhow::Result<()> {
    let cfg = Config::load(config.config.as_deref())?;
    init_logging(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let running = roost_server::start(&cfg).await?;
        tracing::info!(domain = %cfg.domain, data_dir = %cfg.data_dir.display(), "Roost is running");
        wait_for_signal().await;
        tracing::info!("shutting down");
        running.stop().await;
        Ok::<_, anyhow::Error>(())
    })?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn parse_account(jid: &str) -> anyhow::Result<BareJid> {
    let j = BareJid::new(jid).with_context(|| format!("invalid JID {jid:?}"))?;
    if j.node().is_none() {
        bail!("invalid JID {jid:?}: an account JID looks like name@domain");
    }
    Ok(j)
}

fn password(given: Option<String>) -> anyhow::Result<String> {
    match given {
        Some(p) => Ok(p),
        None => {
            let p = rpassword::prompt_password("Password: ").context("reading the password")?;
            let again = rpassword::prompt_password("Again: ").context("reading the password")?;
            if p != again {
                bail!("the passwords differ");
            }
            Ok(p)
        }
    }
}

fn user(command: UserCommand, config: ConfigArg) -> anyhow::Result<()> {
    let cfg = Config::load(config.config.as_deref())?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data_dir {}", cfg.data_dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stores = roost_server::start::open_stores(&cfg).await?;
        match command {
            UserCommand::Add { jid, password: pw } => {
                let user = parse_account(&jid)?;
                if user.domain().as_str() != cfg.domain {
                    bail!("{user} is not on this server's domain {}", cfg.domain);
                }
                let creds = derive(&password(pw)?)?;
                if !stores.accounts.create_account(&user, &creds).await? {
                    bail!("{user} already exists");
                }
                println!("created {user}");
            }
            UserCommand::Remove { jid } => {
                let user = parse_account(&jid)?;
                if !stores.accounts.remove_account(&user).await? {
                    bail!("{user} does not exist");
                }
                // Its uploaded files (XEP-0363) go with it.
                if let Ok(u) = roost_core::upload::Uploads::open(
                    cfg.upload.clone(),
                    &cfg.domain,
                    &cfg.data_dir,
                ) {
                    u.sweep(Some(user.as_str()));
                }
                println!("removed {user}");
            }
            UserCommand::Passwd { jid, password: pw } => {
                let user = parse_account(&jid)?;
                if !stores.accounts.account_exists(&user).await? {
                    bail!("{user} does not exist");
                }
                let creds = derive(&password(pw)?)?;
                stores.accounts.set_credentials(&user, &creds).await?;
                // A new password logs every device out: tokens go too.
                let revoked = roost_core::c2s::fast::revoke(&stores, &user, None)
                    .await
                    .map_err(anyhow::Error::msg)?;
                println!("password changed for {user}; {revoked} login token(s) revoked");
            }
            UserCommand::List { domain } => {
                for u in stores.accounts.list_accounts(domain.as_deref()).await? {
                    println!("{u}");
                }
            }
            UserCommand::Tokens { jid } => {
                let user = parse_account(&jid)?;
                for r in roost_core::c2s::fast::records(&stores, &user).await {
                    let expiry = roost_proto::datetime::to_xep82(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.expiry),
                    );
                    let state = if r.fresh {
                        "issued, not yet used"
                    } else {
                        "in use"
                    };
                    println!("{}\t{}\texpires {expiry}\t{state}", r.client, r.mechanism);
                }
            }
            UserCommand::RevokeTokens { jid, client } => {
                let user = parse_account(&jid)?;
                let n = roost_core::c2s::fast::revoke(&stores, &user, client.as_deref())
                    .await
                    .map_err(anyhow::Error::msg)?;
                println!("{n} login token(s) of {user} revoked");
            }
        }
        Ok(())
    })
}

fn derive(password: &str) -> anyhow::Result<roost_sasl::StoredCredentials> {
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    roost_sasl::credentials::derive(password, roost_sasl::credentials::DEFAULT_ITERATIONS)
        .map_err(|e| anyhow::anyhow!("password not usable: {e}"))
}
