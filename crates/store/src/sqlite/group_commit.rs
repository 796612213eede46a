//! Group commit for archive rows. Every message to a room of U accounts is
//! archived U + 1 times; committing each row on its own would cost U + 1
//! fsyncs in a row, serialised on the one connection. Instead one writer
//! thread gathers the rows queued within a short window and commits them
//! together: one fsync per batch.
//!
//! Rows are queued without waiting (`queue`): the server forwards a
//! message before it is durable, and the rows of one owner keep their
//! order because there is one queue. Readers of the archive first pass a
//! barrier through the same queue (`settle`), so a query always sees every
//! row queued before it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::Db;
use crate::archive::ArchivedMessage;
use crate::{Result, StoreError};

/// Rows committed in one transaction at most (a few MiB of rows in
/// memory). Large enough that a busy server still gathers a whole window:
/// at 8,000 rows/s a cap of 1,024 ended every window after 128 ms, and
/// raising it cut the bytes written by 40 % and the writer's CPU by 15 %.
const MAX_BATCH: usize = 8192;
/// How long the writer waits for more rows after the first of a batch.
/// Each commit rewrites every page its rows touch: the table's last page
/// and, per owner, the last leaf of four indexes, whether the owner got one
/// row or ten. Rows gathered over a longer window share those writes: from
/// 20 to 100 ms the writer's CPU fell by a third, from 100 to 250 ms the
/// bytes written fell by a third again and the writer's CPU by a quarter
/// (`roost-load muc`, 40 accounts, 80 msg/s; docs/benchmarks.md). Readers
/// never wait for it (a barrier ends the window); 250 ms is the most a
/// queued row stays volatile. Messages are forwarded before they are
/// archived, so the window adds no delivery latency.
const GATHER: Duration = Duration::from_millis(250);

struct Row {
    owner: String,
    msg: ArchivedMessage,
    /// Told once the row is committed, or why not.
    done: Option<oneshot::Sender<Result<()>>>,
}

enum Job {
    Row(Row),
    /// Answered once every row queued before it is committed.
    Barrier(oneshot::Sender<()>),
    /// Dropped once every row queued before it is committed; unlike a
    /// barrier it does not end the gather window (nobody reads).
    Hold(Box<dyn std::any::Any + Send>),
}

#[derive(Clone)]
pub(super) struct ArchiveWriter {
    tx: mpsc::Sender<Job>,
    /// The writer thread, woken early by a barrier.
    thread: std::thread::Thread,
}

fn bare_of(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

fn commit(conn: &Arc<Mutex<Connection>>, batch: &[Row]) -> Result<()> {
    let mut conn = conn
        .lock()
        .map_err(|_| StoreError::Backend("sqlite connection mutex poisoned".into()))?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    {
        // A stanza-id seen before (a room's history replayed at join) is
        // kept once: the duplicate is skipped, not an error.
        let mut insert = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO archive (owner, stanza_id, with_jid, with_bare, stamp, xml) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .db()?;
        for row in batch {
            let m = &row.msg;
            insert
                .execute(params![
                    row.owner,
                    m.id,
                    m.with,
                    bare_of(&m.with),
                    m.stamp_ms,
                    m.xml
                ])
                .db()?;
        }
    }
    tx.commit().db()
}

/// Take what arrives within the gather window (no more once a barrier
/// waits: someone is reading), then commit the rows and answer the
/// barriers.
fn writer_loop(conn: Arc<Mutex<Connection>>, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let until = Instant::now() + GATHER;
        // The thread sleeps through the window instead of waking for every
        // row: a row does not wake it, a barrier does (`settle`).
        loop {
            let mut open = true;
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            let reading = jobs.iter().any(|j| matches!(j, Job::Barrier(_)));
            let left = until.saturating_duration_since(Instant::now());
            if !open || reading || jobs.len() >= MAX_BATCH || left.is_zero() {
                break;
            }
            std::thread::park_timeout(left);
        }
        let mut rows = Vec::with_capacity(jobs.len());
        let mut barriers = Vec::new();
        let mut holds = Vec::new();
        for job in jobs {
            match job {
                Job::Row(r) => rows.push(r),
                Job::Barrier(b) => barriers.push(b),
                Job::Hold(h) => holds.push(h),
            }
        }
        if !rows.is_empty() {
            let result = commit(&conn, &rows);
            if let Err(e) = &result {
                tracing::error!(rows = rows.len(), error = %e, "archiving failed");
            }
            for row in rows {
                if let Some(done) = row.done {
                    let _ = done.send(match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(StoreError::Backend(e.to_string())),
                    });
                }
            }
        }
        for b in barriers {
            let _ = b.send(());
        }
        // Released after the commit (a failed commit was logged above).
        drop(holds);
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("archive writer stopped".into())
}

impl ArchiveWriter {
    /// Start the writer thread; it ends when the last store clone is
    /// dropped, after committing what was queued.
    pub(super) fn start(conn: Arc<Mutex<Connection>>) -> Result<ArchiveWriter> {
        let (tx, rx) = mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("roost-archive".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the archive writer: {e}")))?;
        Ok(ArchiveWriter {
            tx,
            thread: writer.thread().clone(),
        })
    }

    /// Queue a row and wait until it is committed.
    pub(super) async fn archive(&self, owner: String, msg: ArchivedMessage) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job::Row(Row {
                owner,
                msg,
                done: Some(done),
            }))
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    /// Queue a row without waiting; a failure is logged by the writer.
    pub(super) fn queue(&self, owner: String, msg: ArchivedMessage) {
        let row = Row {
            owner,
            msg,
            done: None,
        };
        if self.tx.send(Job::Row(row)).is_err() {
            tracing::error!("archive writer stopped; a row was not archived");
        }
    }

    /// Drop `token` once every row queued so far is committed.
    pub(super) fn hold(&self, token: Box<dyn std::any::Any + Send>) {
        // If the writer is gone the token comes back in the error and is
        // dropped here: nothing will ever be committed to wait for.
        let _ = self.tx.send(Job::Hold(token));
    }

    /// Wait until every row queued so far is committed (or failed).
    pub(super) async fn settle(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Job::Barrier(done)).map_err(|_| stopped())?;
        // A reader waits: end the gather window now.
        self.thread.unpark();
        wait.await.map_err(|_| stopped())
    }
}
