//! Group commit for archive rows. Every message to a room of U accounts is
//! archived U times; committing each row on its own would cost U fsyncs in
//! a row, serialised on the one connection. Instead one writer thread takes
//! every row queued while the previous commit ran and commits them
//! together: one fsync per batch, no added wait when the server is idle,
//! and each caller still returns only once its row is durable.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::Db;
use crate::archive::ArchivedMessage;
use crate::{Result, StoreError};

/// Rows committed in one transaction at most.
const MAX_BATCH: usize = 1024;

struct Job {
    owner: String,
    msg: ArchivedMessage,
    done: oneshot::Sender<Result<()>>,
}

#[derive(Clone)]
pub(super) struct ArchiveWriter {
    tx: mpsc::Sender<Job>,
}

fn bare_of(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

fn commit(conn: &Arc<Mutex<Connection>>, batch: &[Job]) -> Result<()> {
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
        for job in batch {
            let m = &job.msg;
            insert
                .execute(params![
                    job.owner,
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

impl ArchiveWriter {
    /// Start the writer thread; it ends when the last store clone is dropped.
    pub(super) fn start(conn: Arc<Mutex<Connection>>) -> Result<ArchiveWriter> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("roost-archive".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let result = commit(&conn, &batch);
                    for job in batch {
                        let r = match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(StoreError::Backend(e.to_string())),
                        };
                        let _ = job.done.send(r);
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the archive writer: {e}")))?;
        Ok(ArchiveWriter { tx })
    }

    /// Queue a row and wait until it is committed.
    pub(super) async fn archive(&self, owner: String, msg: ArchivedMessage) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { owner, msg, done })
            .map_err(|_| StoreError::Backend("archive writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Backend("archive writer stopped".into()))?
    }
}
