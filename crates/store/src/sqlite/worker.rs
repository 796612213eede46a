//! The thread that runs the store's statements. There is one connection,
//! so statements run one at a time whatever runs them; one thread fed by a
//! queue does that without the cost of tokio's blocking pool, where every
//! statement woke a pool thread and 50 concurrent logins had a dozen
//! threads taking turns at the connection's mutex (a fifth of the server's
//! CPU in the login benchmark went to those wake-ups and hand-overs).
//! Under load the thread finds the next job already queued and runs it
//! without sleeping; a send wakes it only when it waits.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Jobs run under one hold of the connection's mutex at most, so that the
/// archive writer (which shares the connection) gets its turn under load.
const JOBS_PER_HOLD: usize = 64;

#[derive(Clone)]
pub(super) struct Worker {
    tx: mpsc::Sender<Job>,
}

fn stopped() -> StoreError {
    StoreError::Backend("storage thread stopped".into())
}

fn worker_loop(conn: Arc<Mutex<Connection>>, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let Ok(mut guard) = conn.lock() else {
            // Poisoned: dropping the jobs tells their callers.
            return;
        };
        let mut job = Some(first);
        let mut ran = 0;
        while let Some(j) = job.take() {
            // A panicking statement fails its caller (its answer is
            // dropped), not every later one.
            let _ = catch_unwind(AssertUnwindSafe(|| j(&mut guard)));
            ran += 1;
            if ran < JOBS_PER_HOLD {
                job = rx.try_recv().ok();
            }
        }
    }
}

impl Worker {
    /// Start the thread; it ends when the last store clone is dropped.
    pub(super) fn start(conn: Arc<Mutex<Connection>>) -> Result<Worker> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("roost-store".into())
            .spawn(move || worker_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the storage thread: {e}")))?;
        Ok(Worker { tx })
    }

    /// Run `f` on the connection and wait for its result.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (answer, wait) = oneshot::channel();
        self.tx
            .send(Box::new(move |conn: &mut Connection| {
                let _ = answer.send(f(conn));
            }))
            .map_err(|_| stopped())?;
        wait.await
            .map_err(|_| StoreError::Backend("storage task failed".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> Worker {
        let conn = Arc::new(Mutex::new(Connection::open_in_memory().unwrap()));
        Worker::start(conn).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_each_get_their_own_result() {
        let w = worker();
        w.run(|c| {
            c.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
            Ok(())
        })
        .await
        .unwrap();
        let tasks: Vec<_> = (0..200i64)
            .map(|n| {
                let w = w.clone();
                tokio::spawn(async move {
                    let got = w
                        .run(move |c| {
                            c.execute("INSERT INTO t VALUES (?1)", [n]).unwrap();
                            let id = c.last_insert_rowid();
                            let stored: i64 = c
                                .query_row("SELECT n FROM t WHERE rowid = ?1", [id], |r| r.get(0))
                                .unwrap();
                            Ok(stored)
                        })
                        .await
                        .unwrap();
                    (n, got)
                })
            })
            .collect();
        for t in tasks {
            let (n, got) = t.await.unwrap();
            assert_eq!(n, got);
        }
        let count: i64 = w
            .run(|c| {
                Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .unwrap())
            })
            .await
            .unwrap();
        assert_eq!(count, 200);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_only_its_caller() {
        let w = worker();
        let failed = w.run::<(), _>(|_| panic!("statement bug")).await;
        assert!(matches!(failed, Err(StoreError::Backend(_))));
        let after = w.run(|c| Ok(c.is_autocommit())).await.unwrap();
        assert!(after);
    }

    #[tokio::test]
    async fn errors_pass_through() {
        let w = worker();
        let e = w
            .run::<(), _>(|_| Err(StoreError::Corrupt("x".into())))
            .await;
        assert!(matches!(e, Err(StoreError::Corrupt(_))));
    }
}
