//! Prometheus text exposition (format 0.0.4) of the server's gauges and
//! counters, served at `GET /metrics` on the HTTP listener (`listen.http`)
//! to loopback clients only: scrape locally or through a local proxy.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};

use crate::counters::{Kind, SESSION_QUEUE_OVERFLOWS};
use crate::http::{Body, ConnInfo};
use crate::server::Server;

/// Where the HTTP listener serves `render`.
pub const PATH: &str = "/metrics";

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// Every metric of the server, in the Prometheus text format.
pub fn render(server: &Server) -> String {
    let c = &server.counters;
    let mut out = String::with_capacity(2048);
    let version = format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
    metric(
        &mut out,
        "roost_build_info",
        "gauge",
        "Roost's version.",
        &[(&version, 1)],
    );
    let max = server.config.limits.max_connections;
    let open = max.saturating_sub(server.connections.available_permits()) as u64;
    metric(
        &mut out,
        "roost_connections",
        "gauge",
        "Open client connections (c2s and HTTP), authenticated or not.",
        &[("", open)],
    );
    metric(
        &mut out,
        "roost_connections_max",
        "gauge",
        "limits.max_connections.",
        &[("", max as u64)],
    );
    metric(
        &mut out,
        "roost_sessions",
        "gauge",
        "Bound client sessions, hibernating (resumable) ones included.",
        &[("", c.sessions())],
    );
    metric(
        &mut out,
        "roost_account_tasks",
        "gauge",
        "Account tasks alive (accounts with sessions, rooms or recent traffic).",
        &[("", server.router.account_tasks() as u64)],
    );
    let labels: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("{{kind=\"{}\"}}", k.as_str()))
        .collect();
    let per_kind = |p: &crate::counters::PerKind| -> Vec<(&str, u64)> {
        Kind::ALL
            .iter()
            .zip(&labels)
            .map(|(k, l)| (l.as_str(), p.get(*k)))
            .collect()
    };
    metric(
        &mut out,
        "roost_stanzas_in_total",
        "counter",
        "Stanzas read from bound client sessions, by kind.",
        &per_kind(&c.stanzas_in),
    );
    metric(
        &mut out,
        "roost_stanzas_out_total",
        "counter",
        "Stanzas written to bound client sessions, by kind.",
        &per_kind(&c.stanzas_out),
    );
    metric(
        &mut out,
        "roost_account_muc_received_total",
        "counter",
        "Stanzas rooms sent to accounts (account-based MUC: one per account, whatever its sessions).",
        &[("", c.account_muc_received.load(Ordering::Relaxed))],
    );
    metric(
        &mut out,
        "roost_account_muc_forked_total",
        "counter",
        "Copies of room stanzas delivered to joined sessions.",
        &[("", c.account_muc_forked.load(Ordering::Relaxed))],
    );
    metric(
        &mut out,
        "roost_session_queue_overflows_total",
        "counter",
        "Sessions closed with policy-violation because their outbound queue was full.",
        &[("", SESSION_QUEUE_OVERFLOWS.load(Ordering::Relaxed))],
    );
    let limit_labels: Vec<String> = crate::limits::Limit::ALL
        .iter()
        .map(|l| format!("{{limit=\"{}\"}}", l.as_str()))
        .collect();
    let limit_hits: Vec<(&str, u64)> = crate::limits::Limit::ALL
        .iter()
        .zip(&limit_labels)
        .map(|(l, label)| (label.as_str(), crate::limits::hits(*l)))
        .collect();
    metric(
        &mut out,
        "roost_limit_hits_total",
        "counter",
        "Times a limit of README \"Limits\" was reached (refused, slowed down or cut), by limit.",
        &limit_hits,
    );
    metric(
        &mut out,
        "roost_queued_bytes",
        "gauge",
        "Bytes of stanzas waiting in session queues (limits.queued_bytes_total).",
        &[("", crate::limits::queue_budget::used() as u64)],
    );
    if let Some(proxy) = server.proxy65.get() {
        let streams = &proxy.streams;
        let (pending, active) = streams.counts();
        metric(
            &mut out,
            "roost_proxy65_streams",
            "gauge",
            "XEP-0065 proxy streams: waiting for activation, and relaying.",
            &[
                ("{state=\"pending\"}", pending as u64),
                ("{state=\"active\"}", active as u64),
            ],
        );
        metric(
            &mut out,
            "roost_proxy65_activated_total",
            "counter",
            "XEP-0065 proxy streams activated.",
            &[("", streams.activated.load(Ordering::Relaxed))],
        );
        metric(
            &mut out,
            "roost_proxy65_bytes_total",
            "counter",
            "Bytes the XEP-0065 proxy relayed, both directions.",
            &[("", streams.bytes_relayed.load(Ordering::Relaxed))],
        );
    }
    if let Some(s2s) = server.s2s.get() {
        let stats = s2s.stats();
        metric(
            &mut out,
            "roost_s2s_incoming_connections",
            "gauge",
            "Connections other servers opened to this one.",
            &[("", stats.incoming as u64)],
        );
        metric(
            &mut out,
            "roost_s2s_routes",
            "gauge",
            "Pairs of domains (ours, theirs) with a way out: a stream we opened, or the peer's bidirectional stream (XEP-0288).",
            &[
                ("{via=\"outgoing\"}", stats.routes_outgoing as u64),
                ("{via=\"bidi\"}", stats.routes_bidi as u64),
                ("{via=\"multiplexed\"}", stats.routes_multiplexed as u64),
            ],
        );
        metric(
            &mut out,
            "roost_s2s_outgoing_connections",
            "gauge",
            "Connections this server opened to others (several domain pairs may share one).",
            &[("", stats.outgoing_connections as u64)],
        );
    }
    out
}

/// The `GET /metrics` response: the metrics for loopback peers, 403 for
/// anyone else (they are not meant for the public port).
pub(crate) fn respond(info: &Arc<ConnInfo>) -> Response<Body> {
    if !info.peer.ip().to_canonical().is_loopback() {
        return crate::http::plain(StatusCode::FORBIDDEN, "metrics are served to loopback only");
    }
    let mut r = Response::new(Full::new(Bytes::from(render(&info.server))));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}
