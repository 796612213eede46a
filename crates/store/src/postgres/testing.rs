//! Test support for the PostgreSQL backend: a store in a schema of its own
//! (created for the test, dropped after it) in the database named by
//! `ROOST_TEST_POSTGRES_URL`, which scripts/with-postgres.sh sets up.
//! Without that variable the tests say they are skipped, except in CI
//! (`CI=true`), where they fail: a CI run must not pass them unrun.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::PostgresStore;

/// The variable naming the test database.
pub(crate) const URL_VAR: &str = "ROOST_TEST_POSTGRES_URL";

/// The test database's URL, or `None` (after saying so) when the tests
/// are to be skipped.
pub(crate) fn test_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{URL_VAR} is not set, and CI=true: run the tests through \
                     scripts/with-postgres.sh"
                );
            }
            // Straight to stderr: the test harness would hide eprintln!'s
            // output of a passing test.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {URL_VAR} is not set (see scripts/with-postgres.sh)"
            );
            None
        }
    }
}

/// A schema dropped (with everything in it) when this is dropped.
pub(crate) struct Scratch {
    url: String,
    pub(crate) schema: String,
}

impl Scratch {
    /// A new empty schema; `tokio_postgres::Config` for connections that
    /// work in it.
    pub(crate) async fn new(url: &str) -> (Scratch, tokio_postgres::Config) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = format!(
            "roost_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create the test schema");
        drop(client);
        let _ = task.await;
        let mut config: tokio_postgres::Config = url.parse().expect("test URL");
        config.options(format!("-c search_path={schema}"));
        // Named after the schema, so that the drop can end them.
        config.application_name(&schema);
        (
            Scratch {
                url: url.to_string(),
                schema,
            },
            config,
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        // The test's own connections may still be open (its runtime is
        // blocked here): they are ended first, so the drop takes its locks.
        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        // Drop runs inside the test's runtime: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                             WHERE application_name = $1 AND pid <> pg_backend_pid()",
                            &[&schema],
                        )
                        .await;
                    let _ = client.batch_execute("SET lock_timeout = '30s'").await;
                    let _ = client.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}

/// A store on a fresh schema of the test database, or `None` when the
/// tests are skipped (see `test_url`).
pub(crate) async fn scratch_store(test: &str) -> Option<(Scratch, PostgresStore)> {
    let url = test_url(test)?;
    let (scratch, config) = Scratch::new(&url).await;
    let store = PostgresStore::open_config(config, 4)
        .await
        .expect("open the PostgreSQL store");
    Some((scratch, store))
}
