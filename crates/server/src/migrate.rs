//! `roost storage migrate --from sqlite:PATH --to postgres:URL`: copy
//! everything a SQLite database holds into a PostgreSQL database, in one
//! transaction (roost-store's transfer.rs and `PostgresStore::import`).
//! A target that holds anything is refused unless `--force` is given, which
//! replaces its contents; a copy that fails leaves the target as it was.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use roost_store::transfer::Counts;
use roost_store::{PostgresStore, SqliteStore};

/// The path of a `sqlite:PATH` argument.
pub fn parse_source(arg: &str) -> anyhow::Result<PathBuf> {
    match arg.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => bail!("--from {arg:?}: expected sqlite:PATH"),
    }
}

/// The URL of a `postgres:URL` argument (a bare `postgres://` or
/// `postgresql://` URL is taken as it is).
pub fn parse_target(arg: &str) -> anyhow::Result<String> {
    let url = if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
        arg
    } else {
        match arg.strip_prefix("postgres:") {
            Some(url) if !url.is_empty() => url,
            _ => bail!("--to {arg:?}: expected postgres:URL"),
        }
    };
    roost_store::postgres::check_url(url).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    Ok(url.to_string())
}

/// Copy the SQLite database at `from` into the PostgreSQL database at
/// `to`; the rows copied per table.
pub async fn migrate(from: &Path, to: &str, force: bool) -> anyhow::Result<Counts> {
    // Opening a missing file would create an empty database: refuse.
    if !from.is_file() {
        bail!("{}: no such SQLite database", from.display());
    }
    let source = SqliteStore::open(from)
        .await
        .with_context(|| format!("opening {}", from.display()))?;
    let target = PostgresStore::open(to, 2).await.with_context(|| {
        format!(
            "opening PostgreSQL at {}",
            roost_store::postgres::redact_url(to)
        )
    })?;
    let counts = target.import(&source, force).await?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_store::{AccountStore, ArchiveQuery, ArchiveStore, ArchivedMessage};

    #[test]
    fn arguments_name_their_backend() {
        assert_eq!(
            parse_source("sqlite:/var/lib/roost/roost.sqlite").unwrap(),
            PathBuf::from("/var/lib/roost/roost.sqlite")
        );
        assert!(parse_source("/var/lib/roost/roost.sqlite").is_err());
        assert!(parse_source("sqlite:").is_err());
        assert_eq!(
            parse_target("postgres:postgres://roost@127.0.0.1/roost").unwrap(),
            "postgres://roost@127.0.0.1/roost"
        );
        assert_eq!(
            parse_target("postgresql://roost@127.0.0.1/roost").unwrap(),
            "postgresql://roost@127.0.0.1/roost"
        );
        assert_eq!(
            parse_target("postgres:host=/run/postgresql dbname=roost").unwrap(),
            "host=/run/postgresql dbname=roost"
        );
        assert!(parse_target("mysql://x/y").is_err());
        assert!(parse_target("postgres:").is_err());
    }

    #[tokio::test]
    async fn a_missing_source_is_refused_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sqlite");
        let err = migrate(&path, "postgres://roost@127.0.0.1:1/roost", false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no such SQLite database"), "{err}");
        assert!(!path.exists());
    }

    /// The whole command against the database of `ROOST_TEST_POSTGRES_URL`
    /// (scripts/with-postgres.sh), in a schema of its own; the store
    /// crate's import test checks every table.
    #[tokio::test]
    async fn postgres_migrate_copies_a_server_database() {
        let Some(url) = std::env::var("ROOST_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "ROOST_TEST_POSTGRES_URL is not set, and CI=true: \
                 run the tests through scripts/with-postgres.sh"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED postgres_migrate_copies_a_server_database: \
                 ROOST_TEST_POSTGRES_URL is not set (see scripts/with-postgres.sh)"
            );
            return;
        };
        let schema = format!("roost_migrate_{}", std::process::id());
        let (admin, conn) = tokio_postgres_connect(&url).await;
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let target = format!("{url}{sep}options=-c%20search_path%3D{schema}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roost.sqlite");
        let alice = jid::BareJid::new("alice@example.org").unwrap();
        {
            let s = SqliteStore::open(&path).await.unwrap();
            let creds = roost_sasl::credentials::derive("secret", 4096).unwrap();
            s.create_account(&alice, &creds).await.unwrap();
            for i in 0..100 {
                s.archive_queued(
                    &alice,
                    ArchivedMessage {
                        id: format!("m{i}"),
                        with: "bob@example.org/x".into(),
                        stamp_ms: i,
                        xml: "<message/>".into(),
                    },
                );
            }
            s.settle_archive().await.unwrap();
        }
        let counts = migrate(&path, &target, false).await.unwrap();
        assert_eq!((counts.accounts, counts.archive), (1, 100));
        let again = migrate(&path, &target, false).await.unwrap_err();
        assert!(again.to_string().contains("--force"), "{again:#}");
        assert_eq!(migrate(&path, &target, true).await.unwrap(), counts);

        let pg = PostgresStore::open(&target, 2).await.unwrap();
        assert!(pg.credentials(&alice).await.unwrap().is_some());
        let page = pg
            .query_archive(
                &alice,
                &ArchiveQuery {
                    max: 10,
                    from_end: true,
                    ..ArchiveQuery::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(page.messages.last().unwrap().id, "m99");
        drop(pg);
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
        drop(admin);
        let _ = conn.await;
    }

    async fn tokio_postgres_connect(
        url: &str,
    ) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        (
            client,
            tokio::spawn(async move {
                let _ = conn.await;
            }),
        )
    }
}
