//! Embedded SQLite backend: one connection behind a mutex, used from async
//! code through one storage thread (`worker`), with the schema kept by
//! versioned migrations.
//!
//! The server and the `roost user add` CLI open the same file from different
//! processes, so the connection uses WAL (readers don't block the writer), a
//! busy timeout (wait for the other process instead of failing), and
//! `BEGIN IMMEDIATE` for every write transaction (so a transaction never has
//! to upgrade a read lock, which SQLite would refuse without waiting).

mod accounts;
mod archive;
mod export;
mod group_commit;
pub(crate) mod migrations;
mod muc;
mod offline;
mod private;
mod pubsub;
mod roster;
mod worker;

use crate::{Result, StoreError};
use jid::BareJid;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a statement waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pages of WAL after which a commit checkpoints (see `init`).
const WAL_AUTOCHECKPOINT: i64 = 10_000;

/// Most memory SQLite's page cache may use, in KiB (see `init`).
const CACHE_KIB: i64 = 32 * 1024;

/// Statements kept prepared per connection: more than the store has.
const STATEMENT_CACHE: usize = 256;

/// `query_row` and `execute` with the statement taken from rusqlite's
/// per-connection cache: on the login path, parsing and planning the SQL
/// cost more than running it. The SQL text is the cache key.
pub(super) trait Cached {
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl Cached for Connection {
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

/// All storage traits over one SQLite database. Cheap to clone: clones share
/// the connection.
#[derive(Clone)]
pub struct SqliteStore {
    worker: worker::Worker,
    archive_writer: group_commit::ArchiveWriter,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating it and its parent directories when missing) the
    /// database at `path`, and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(&path))
            .await
            .map_err(join_error)?
    }

    /// [`SqliteStore::open`] for callers outside a runtime (tools, tests).
    pub fn open_blocking(path: &Path) -> Result<SqliteStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        create_private_file(path)?;
        let conn = Connection::open(path).db()?;
        SqliteStore::init(conn)
    }

    /// A private database that lives as long as this store (tests, tools).
    pub fn open_in_memory() -> Result<SqliteStore> {
        SqliteStore::init(Connection::open_in_memory().db()?)
    }

    /// The schema version of the open database (the number of migrations
    /// applied).
    pub async fn schema_version(&self) -> Result<usize> {
        self.call(|conn| migrations::current_version(conn)).await
    }

    fn init(mut conn: Connection) -> Result<SqliteStore> {
        // Set first: even switching to WAL may wait for the other process.
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        // Returns the resulting mode; in-memory databases stay "memory".
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .db()?;
        // FULL also syncs the WAL on every commit: nothing a client was told
        // is stored may be lost by a power cut.
        conn.pragma_update(None, "synchronous", "FULL").db()?;
        conn.pragma_update(None, "foreign_keys", true).db()?;
        // Checkpoint (copy the WAL back into the database) every 10,000
        // pages (40 MiB of WAL) instead of SQLite's 1,000: the archive's
        // hot pages are rewritten by every commit, and a checkpoint copies
        // each of them once however often the WAL holds it, so rarer
        // checkpoints copy less (a quarter fewer bytes written in the MUC
        // benchmark). The WAL file stays at most about that size.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
            .db()?;
        // SQLite's default page cache (2 MiB) is smaller than the pages an
        // archive commit touches once a few hundred accounts are in busy
        // rooms (each owner's last leaf of four indexes): pages were
        // evicted, spilled to the WAL mid-transaction and read back, a
        // third of the archive writer's CPU at 8,000 rows/s. The cache
        // grows to this size only as pages are used.
        conn.pragma_update(None, "cache_size", -CACHE_KIB).db()?;
        // Every statement the store runs, kept prepared (see `Cached`).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Plans that do not depend on bound values: otherwise this build of
        // SQLite (with STAT4) re-prepares a kept statement whenever a
        // parameter the planner looked at is bound again.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .db()?;
        migrations::migrate(&mut conn)?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(SqliteStore {
            archive_writer: group_commit::ArchiveWriter::start(conn.clone())?,
            worker: worker::Worker::start(conn)?,
        })
    }

    /// Run `f` on the connection, on the storage thread.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.worker.run(f).await
    }

    /// Run `f` in an immediate transaction, committed before returning.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .db()?;
            let out = f(&tx)?;
            tx.commit().db()?;
            Ok(out)
        })
        .await
    }
}

/// Create the database file readable by its owner only, since it holds
/// credentials; SQLite gives its -wal and -shm files the same mode.
fn create_private_file(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Backend(format!("storage task failed: {e}"))
}

/// `?` for rusqlite results inside the backend.
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| StoreError::Backend(e.to_string()))
    }
}

/// A JID as stored: its normalized text.
fn jid_text(jid: &BareJid) -> &str {
    jid.as_str()
}

fn parse_jid(text: &str) -> Result<BareJid> {
    BareJid::new(text).map_err(|e| StoreError::Corrupt(format!("stored JID {text:?}: {e}")))
}

/// Versions are u64 in the API and INTEGER (i64) in SQLite.
fn version_from_db(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative roster version {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pragmas_are_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("roost.db"))
            .await
            .expect("open");
        let (mode, sync, fk, timeout, checkpoint, cache) = store
            .call(|conn| {
                let get = |name: &str| {
                    conn.pragma_query_value(None, name, |row| {
                        row.get::<_, rusqlite::types::Value>(0)
                    })
                    .db()
                };
                Ok((
                    get("journal_mode")?,
                    get("synchronous")?,
                    get("foreign_keys")?,
                    get("busy_timeout")?,
                    get("wal_autocheckpoint")?,
                    get("cache_size")?,
                ))
            })
            .await
            .expect("pragmas");
        use rusqlite::types::Value;
        assert_eq!(mode, Value::Text("wal".into()));
        assert_eq!(sync, Value::Integer(2), "synchronous=FULL");
        assert_eq!(fk, Value::Integer(1));
        assert_eq!(checkpoint, Value::Integer(WAL_AUTOCHECKPOINT));
        assert_eq!(cache, Value::Integer(-CACHE_KIB));
        assert_eq!(timeout, Value::Integer(5000));
    }
}
