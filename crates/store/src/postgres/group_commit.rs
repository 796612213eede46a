//! Group commit for archive rows on PostgreSQL, as the SQLite backend's:
//! every message to a room of U accounts is archived U + 1 times, and one
//! transaction per row would cost U + 1 round trips and WAL flushes. One
//! writer task gathers the rows queued within a short window and inserts
//! them with one statement in one transaction.
//!
//! Rows are queued without waiting (`queue`) and keep their order: there
//! is one queue, and the batch takes its `seq` values from `archive_seq`,
//! sorted, in queue order. Readers first pass a barrier through the same
//! queue (`settle`), so a query sees every row queued before it. The
//! per-owner message counts (`archive_counts`) change in the same
//! statement as the rows.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::archive::ArchivedMessage;
use crate::{Result, StoreError};

/// Rows inserted in one transaction at most.
const MAX_BATCH: usize = 8192;
/// How long the writer waits for more rows after the first of a batch.
/// Shorter than SQLite's 250 ms: there a commit rewrites whole pages of
/// every index an owner touched, so longer windows saved much; here a
/// batch saves round trips and WAL flushes, which a few dozen rows already
/// share. It is also the most a queued row stays volatile, and how long a
/// stream management receipt held by `hold` may wait. Readers never wait
/// for it: a barrier ends the window.
const GATHER: Duration = Duration::from_millis(50);

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
    tx: mpsc::UnboundedSender<Job>,
}

fn bare_of(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

/// One statement inserts the batch (rows whose stanza-id the owner already
/// has are skipped, as a room's history replayed at join) and adds what
/// was inserted to the owners' counts, in owner order so that two writers
/// never lock counts in opposite orders.
const INSERT: &str = "WITH batch AS ( \
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[]) \
         AS r(owner, seq, stanza_id, with_jid, with_bare, stamp, xml) \
     ), inserted AS ( \
       INSERT INTO archive (owner, seq, stanza_id, with_jid, with_bare, stamp, xml) \
       SELECT owner, seq, stanza_id, with_jid, with_bare, stamp, xml FROM batch \
       ON CONFLICT (owner, stanza_id) DO NOTHING \
       RETURNING owner \
     ) \
     INSERT INTO archive_counts (owner, messages) \
     SELECT owner, COUNT(*) FROM inserted GROUP BY owner ORDER BY owner \
     ON CONFLICT (owner) DO UPDATE SET messages = archive_counts.messages + EXCLUDED.messages";

async fn commit(pool: &Pool, batch: &[Row]) -> Result<()> {
    let mut attempt = 1;
    loop {
        let mut client = super::get(pool).await?;
        match insert(&mut client, batch).await {
            Ok(()) => return Ok(()),
            // A deadlock with a purge updating the same counts (archive.rs).
            Err(e) if attempt < super::ATTEMPTS && super::retryable(&e) => {
                tracing::warn!(error = %super::describe(&e), "archive batch retried");
                attempt += 1;
            }
            Err(e) => return Err(StoreError::Backend(super::describe(&e))),
        }
    }
}

async fn insert(
    client: &mut deadpool_postgres::Object,
    batch: &[Row],
) -> std::result::Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let n = i32::try_from(batch.len()).unwrap_or(i32::MAX);
    let take = tx
        .prepare_cached("SELECT nextval('archive_seq') FROM generate_series(1, $1)")
        .await?;
    let mut seqs: Vec<i64> = tx
        .query(&take, &[&n])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The values come in no promised order: sorted, they follow the queue.
    seqs.sort_unstable();
    let mut owners = Vec::with_capacity(batch.len());
    let mut ids = Vec::with_capacity(batch.len());
    let mut withs = Vec::with_capacity(batch.len());
    let mut bares = Vec::with_capacity(batch.len());
    let mut stamps = Vec::with_capacity(batch.len());
    let mut xmls = Vec::with_capacity(batch.len());
    for row in batch {
        owners.push(row.owner.as_str());
        ids.push(row.msg.id.as_str());
        withs.push(row.msg.with.as_str());
        bares.push(bare_of(&row.msg.with));
        stamps.push(row.msg.stamp_ms);
        xmls.push(row.msg.xml.as_str());
    }
    let insert = tx.prepare_cached(INSERT).await?;
    tx.execute(
        &insert,
        &[&owners, &seqs, &ids, &withs, &bares, &stamps, &xmls],
    )
    .await?;
    tx.commit().await
}

/// Take what arrives within the gather window (no more once a barrier
/// waits: someone is reading), then commit the rows and answer the
/// barriers.
async fn writer_loop(pool: Pool, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut reading = matches!(first, Job::Barrier(_));
        let mut jobs = vec![first];
        let until = Instant::now() + GATHER;
        while !reading && jobs.len() < MAX_BATCH {
            // Whatever is queued already, without waiting.
            match rx.try_recv() {
                Ok(job) => {
                    reading = matches!(job, Job::Barrier(_));
                    jobs.push(job);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(job)) => {
                    reading = matches!(job, Job::Barrier(_));
                    jobs.push(job);
                }
                // Closed, or the window is over.
                Ok(None) | Err(_) => break,
            }
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
            let result = commit(&pool, &rows).await;
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
    /// Start the writer task on the current runtime; it ends when the last
    /// store clone is dropped, after committing what was queued.
    pub(super) fn start(pool: Pool) -> ArchiveWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer_loop(pool, rx));
        ArchiveWriter { tx }
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
        wait.await.map_err(|_| stopped())
    }
}
