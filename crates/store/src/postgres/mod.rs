//! PostgreSQL backend: every storage trait over a pool of connections to
//! one database, with the schema kept by versioned migrations
//! (`migrations.rs`) and archive rows written by a group commit
//! (`group_commit.rs`), as in the SQLite backend.
//!
//! Driver: tokio-postgres with deadpool-postgres as the pool, chosen over
//! sqlx by measurement (docs/benchmarks.md, "PostgreSQL storage"): against
//! the same loopback PostgreSQL 15, one-row inserts took 40-44 µs with
//! tokio-postgres and 93-171 µs with sqlx 0.8, pages of 51 rows 287-297 µs
//! against 419-460 µs; the driver and pool are 81 crates against 150, built
//! in 30 s against 53 s (sqlx's time with tokio already built), and a
//! release binary of each test program weighed 2.3 MB against 3.0 MB.
//! sqlx's compile-time checked queries need a database or an offline cache
//! at build time, which this project's CI would have to provide; and sqlx
//! 0.9 needs a newer Rust than the workspace's `rust-version`.
//!
//! Connections are made without TLS (`NoTls`): the backend is meant for a
//! database on loopback or a private network. A remote database over an
//! untrusted network needs a TLS connector added here, or a tunnel.
//!
//! Concurrency: statements run on up to `pool_size` connections at once, at
//! PostgreSQL's default isolation (read committed). Where a trait promises
//! something across statements the code says how it is kept: one
//! statement (one snapshot), a row lock (`FOR UPDATE`), an upsert's row
//! lock, or a transaction-scoped advisory lock per account.

mod accounts;
mod archive;
mod group_commit;
mod import;
pub(crate) mod migrations;
mod muc;
mod offline;
mod private;
mod pubsub;
mod roster;
#[cfg(test)]
pub(crate) mod testing;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use jid::BareJid;
use tokio_postgres::NoTls;

use crate::{Result, StoreError};

/// Pool size when the configuration gives none.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// How long opening a connection may take before the caller gets an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a free connection of a busy pool.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// All storage traits over one PostgreSQL database. Cheap to clone: clones
/// share the pool and the archive writer.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    archive_writer: group_commit::ArchiveWriter,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connect to the database at `url` (`postgres://user@host:port/db`,
    /// or libpq's `key=value` form) with at most `pool_size` connections,
    /// and bring its schema up to date. Must be called inside a tokio
    /// runtime, which then runs the connections and the archive writer.
    pub async fn open(url: &str, pool_size: usize) -> Result<PostgresStore> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        PostgresStore::open_config(config, pool_size).await
    }

    /// [`PostgresStore::open`] from a parsed configuration (tests add a
    /// `search_path` to it, to give each test a schema of its own).
    pub async fn open_config(
        mut config: tokio_postgres::Config,
        pool_size: usize,
    ) -> Result<PostgresStore> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("roost");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A connection that broke is noticed by its next statement;
                // checking each one out with a query would cost a round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        {
            let mut client = get(&pool).await?;
            migrations::migrate(&mut client).await?;
        }
        Ok(PostgresStore {
            archive_writer: group_commit::ArchiveWriter::start(pool.clone()),
            pool,
        })
    }

    /// The schema version of the database (the number of migrations
    /// applied).
    pub async fn schema_version(&self) -> Result<usize> {
        let client = self.client().await?;
        migrations::current_version(&client).await
    }

    /// A connection of the pool, given back when dropped.
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        get(&self.pool).await
    }
}

/// Whether `url` is a PostgreSQL connection string this backend can use
/// (checked without connecting); the reason when not.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    url.parse::<tokio_postgres::Config>()
        .map(drop)
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))
}

/// `url` with its password, if any, replaced by `***`, for printing.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // postgres://user:password@host/db: the password is between the
        // first ':' and the last '@' of the part before the path.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}{tail}");
            }
        }
        return url.to_string();
    }
    // libpq's key=value form.
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn get(pool: &Pool) -> Result<deadpool_postgres::Object> {
    pool.get()
        .await
        .map_err(|e| StoreError::Backend(format!("PostgreSQL connection: {e}")))
}

/// `?` for tokio-postgres results inside the backend. The server's own
/// message is kept: `Error`'s Display alone says only "db error".
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for std::result::Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T> {
        self.map_err(|e| StoreError::Backend(describe(&e)))
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}: {}", db.code().code(), db.message()),
        None => format!("PostgreSQL: {e}"),
    }
}

/// Tries of a statement that PostgreSQL aborted to break a deadlock.
const ATTEMPTS: u32 = 3;

/// PostgreSQL aborted the transaction to break a deadlock or a
/// serialization conflict: running it again is expected to succeed.
fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// A JID as stored: its normalized text.
fn jid_text(jid: &BareJid) -> &str {
    jid.as_str()
}

fn parse_jid(text: &str) -> Result<BareJid> {
    BareJid::new(text).map_err(|e| StoreError::Corrupt(format!("stored JID {text:?}: {e}")))
}

/// Versions are u64 in the API and BIGINT (i64) in PostgreSQL.
fn version_from_db(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative roster version {v}")))
}

/// Counts and sizes are usize in the API and BIGINT in PostgreSQL.
fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::{check_url, redact_url};

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://roost:s3cret@127.0.0.1:5432/roost"),
            "postgres://roost:***@127.0.0.1:5432/roost"
        );
        assert_eq!(
            redact_url("postgres://roost@127.0.0.1/roost"),
            "postgres://roost@127.0.0.1/roost"
        );
        assert_eq!(
            redact_url("host=/run/postgresql password=s3cret dbname=roost"),
            "host=/run/postgresql password=*** dbname=roost"
        );
    }

    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(check_url("postgres://roost@127.0.0.1/roost").is_ok());
        assert!(check_url("postgresql://roost@[::1]:5433/roost").is_ok());
        assert!(check_url("host=/tmp dbname=roost").is_ok());
        assert!(check_url("mysql://x/y").is_err());
    }
}
