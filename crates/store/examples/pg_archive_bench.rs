//! Benchmark of the PostgreSQL archive (docs/benchmarks.md, "PostgreSQL
//! storage"): the insert rate of the group commit while one owner's
//! archive grows to a million rows, then the latency of the queries a MAM
//! client makes against it, and the plans PostgreSQL uses for them.
//!
//!   bash scripts/with-postgres.sh --durable \
//!     cargo run --release -p roost-store --example pg_archive_bench [ROWS]
//!
//! Uses the database of ROOST_TEST_POSTGRES_URL, in a schema of its own
//! (`roost_bench`, dropped first and left for inspection afterwards).

use std::time::{Duration, Instant};

use jid::BareJid;
use roost_store::{ArchiveQuery, ArchiveStore, ArchivedMessage, PostgresStore};

/// Rows queued before waiting for them: a burst of a busy server.
const WAVE: usize = 20_000;
/// Every tenth row goes to another owner, so the table is not one owner's.
const OTHERS: usize = 10;

fn message(i: usize) -> ArchivedMessage {
    let peer = i % 50;
    ArchivedMessage {
        id: format!("{i:016x}-stanza-id"),
        with: format!("contact{peer}@example.org/phone"),
        stamp_ms: 1_700_000_000_000 + i as i64 * 10,
        xml: format!(
            "<message xmlns='jabber:client' from='contact{peer}@example.org/phone' \
             to='owner@example.org' type='chat' id='m{i}'><body>message number {i}, \
             with some words of text in it</body></message>"
        ),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn time_query(
    store: &PostgresStore,
    owner: &BareJid,
    name: &str,
    q: impl Fn(usize) -> ArchiveQuery,
) {
    let mut times = Vec::new();
    let mut rows = 0;
    for n in 0..300 {
        let query = q(n);
        let t = Instant::now();
        let page = store
            .query_archive(owner, &query)
            .await
            .expect("query")
            .expect("page");
        times.push(t.elapsed());
        rows = page.messages.len();
    }
    times.sort();
    println!(
        "{name:<44} {rows:>3} rows  median {:>6.0} µs  p99 {:>6.0} µs",
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6
    );
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROWS is a number"))
        .unwrap_or(1_000_000);
    let url = std::env::var("ROOST_TEST_POSTGRES_URL")
        .expect("ROOST_TEST_POSTGRES_URL (run through scripts/with-postgres.sh)");
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    admin
        .batch_execute("DROP SCHEMA IF EXISTS roost_bench CASCADE; CREATE SCHEMA roost_bench")
        .await
        .expect("schema");
    let mut config: tokio_postgres::Config = url.parse().expect("url");
    config.options("-c search_path=roost_bench");
    let store = PostgresStore::open_config(config.clone(), 8)
        .await
        .expect("open");
    let owner = BareJid::new("owner@example.org").unwrap();
    let others: Vec<BareJid> = (0..20)
        .map(|i| BareJid::new(&format!("other{i}@example.org")).unwrap())
        .collect();

    // Insert: the server's path (archive_queued, then a barrier), in waves.
    let started = Instant::now();
    let mut owned = 0;
    let mut i = 0;
    while owned < rows {
        for _ in 0..WAVE {
            if i % OTHERS == OTHERS - 1 {
                store.archive_queued(&others[i % others.len()], message(i));
            } else {
                store.archive_queued(&owner, message(i));
                owned += 1;
                if owned == rows {
                    i += 1;
                    break;
                }
            }
            i += 1;
        }
        store.settle_archive().await.expect("settle");
    }
    let took = started.elapsed();
    println!(
        "inserted {i} rows ({owned} for one owner) in {:.1} s: {:.0} rows/s",
        took.as_secs_f64(),
        i as f64 / took.as_secs_f64()
    );

    // What autovacuum does soon after a bulk of inserts (it sets the
    // visibility map, which index-only scans rely on), done now.
    let t = Instant::now();
    admin
        .batch_execute("VACUUM (ANALYZE) roost_bench.archive")
        .await
        .expect("vacuum");
    println!("VACUUM (ANALYZE) took {:.1} s", t.elapsed().as_secs_f64());

    let count = store.archive_count(&owner).await.expect("count");
    let t = Instant::now();
    let scanned: i64 = admin
        .query_one(
            "SELECT COUNT(*) FROM roost_bench.archive WHERE owner = $1",
            &[&owner.as_str()],
        )
        .await
        .expect("count(*)")
        .get(0);
    let scan = t.elapsed();
    let t = Instant::now();
    let _ = store.archive_count(&owner).await.expect("count");
    println!(
        "message count {count:?}: {:.0} µs from archive_counts; COUNT(*) ({scanned}) took {:.0} ms",
        t.elapsed().as_secs_f64() * 1e6,
        scan.as_secs_f64() * 1e3
    );

    let page = |f: &dyn Fn(&mut ArchiveQuery)| {
        let mut q = ArchiveQuery {
            max: 50,
            ..ArchiveQuery::default()
        };
        f(&mut q);
        q
    };
    // Messages of the owner around the middle of its archive.
    let inserted = i;
    let mid = |n: usize| {
        let mut j = inserted / 2 + (n * 57) % (inserted / 4);
        if j % OTHERS == OTHERS - 1 {
            j -= 1;
        }
        message(j)
    };
    time_query(&store, &owner, "first page (max 50)", |_| page(&|_| {})).await;
    time_query(&store, &owner, "last page (RSM <before/>)", |_| {
        page(&|q| q.from_end = true)
    })
    .await;
    time_query(&store, &owner, "page after an id in the middle", |n| {
        let id = mid(n).id;
        page(&move |q| q.after_id = Some(id.clone()))
    })
    .await;
    time_query(&store, &owner, "page before an id in the middle", |n| {
        let id = mid(n).id;
        page(&move |q| {
            q.before_id = Some(id.clone());
            q.from_end = true;
        })
    })
    .await;
    time_query(&store, &owner, "page with one contact (bare JID)", |_| {
        page(&|q| q.with = Some("contact7@example.org".into()))
    })
    .await;
    time_query(
        &store,
        &owner,
        "page from a start time in the middle",
        |n| {
            let start = mid(n).stamp_ms;
            page(&move |q| q.start_ms = Some(start))
        },
    )
    .await;
    time_query(&store, &owner, "page of a one-minute window", |n| {
        let start = mid(n).stamp_ms;
        page(&move |q| {
            q.start_ms = Some(start);
            q.end_ms = Some(start + 60_000);
        })
    })
    .await;

    // The plans, with the pages of shared buffers each read.
    let id = mid(0).id;
    let stamp = mid(0).stamp_ms;
    for (what, sql) in [
        (
            "an RSM id to its seq",
            format!("SELECT seq FROM archive WHERE owner = '{owner}' AND stanza_id = '{id}'"),
        ),
        (
            "a start time to its seq",
            format!(
                "SELECT seq FROM archive WHERE owner = '{owner}' AND stamp >= {stamp} \
                 ORDER BY stamp, seq LIMIT 1"
            ),
        ),
        (
            "the page after that seq",
            format!(
                "SELECT stanza_id, with_jid, stamp, xml FROM archive WHERE owner = '{owner}' \
                 AND seq BETWEEN (SELECT seq FROM archive WHERE owner = '{owner}' \
                 AND stanza_id = '{id}') + 1 AND 9223372036854775807 ORDER BY seq LIMIT 51"
            ),
        ),
        (
            "the count",
            format!("SELECT messages FROM archive_counts WHERE owner = '{owner}'"),
        ),
    ] {
        println!("\nplan of {what}:");
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        for row in client
            .query(&format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"), &[])
            .await
            .expect("explain")
        {
            let line: String = row.get(0);
            println!("  {line}");
        }
    }
    let size: String = admin
        .query_one(
            "SELECT pg_size_pretty(pg_total_relation_size('roost_bench.archive'))",
            &[],
        )
        .await
        .expect("size")
        .get(0);
    println!("\narchive table with its indexes: {size}");
}
