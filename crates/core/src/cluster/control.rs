//! Operating a cluster: `roost cluster status` asks every node on the
//! control subject what it holds; `roost cluster drain NODE` asks one node
//! to give up its accounts and rooms and to send its clients elsewhere
//! (for rolling upgrades).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::frame::{self, Entry};
use super::{connect, Cluster, ClusterError, Subjects};
use crate::config::ClusterConfig;

/// One node's answer to `status`.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub node: String,
    /// `serving` or `draining`.
    pub state: String,
    pub sessions: usize,
    /// Account tasks running on the node (the accounts it owns and uses).
    pub accounts: usize,
    /// Rooms whose task runs on the node.
    pub rooms: Vec<String>,
    /// The nodes it sees, itself included.
    pub sees: Vec<String>,
    /// Stanzas it sent to other nodes that they have not yet made safe.
    pub unconfirmed: usize,
}

/// A node's answer to a control request (`None`: not for this node).
pub(super) async fn answer(c: &Arc<Cluster>, payload: &[u8]) -> Option<Vec<u8>> {
    let e = frame::read(payload)?.pop()?;
    let server = c.server.upgrade()?;
    let mut out = Vec::new();
    match e.kind.as_str() {
        "STATUS" => {
            let view = c.view();
            let rooms = server.router.owned_rooms();
            let live: Vec<&str> = view.live.iter().map(|n| n.as_ref()).collect();
            Entry::new(
                "NODE",
                &[
                    &c.node,
                    if c.is_draining() {
                        "draining"
                    } else {
                        "serving"
                    },
                    &c.local_session_count().to_string(),
                    &server.router.account_tasks().to_string(),
                    &live.join(","),
                    &c.pending_receipts().to_string(),
                ],
                rooms.join("\n").into_bytes(),
            )
            .write(&mut out);
        }
        "DRAIN" if e.field(0) == c.node.as_ref() => {
            c.drain().await;
            Entry::new("OK", &[&c.node], Vec::new()).write(&mut out);
        }
        _ => return None,
    }
    Some(out)
}

async fn ask(
    config: &ClusterConfig,
    domain: &str,
    question: Entry,
    wait: Duration,
    enough: impl Fn(&[Entry]) -> bool,
) -> Result<Vec<Entry>, ClusterError> {
    let client = connect(config, "roost-cli").await?;
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| ClusterError::Bus(e.to_string()))?;
    let mut body = Vec::new();
    question.write(&mut body);
    client
        .publish_with_reply(Subjects::new(domain).control(), inbox, body.into())
        .await
        .map_err(|e| ClusterError::Bus(e.to_string()))?;
    client
        .flush()
        .await
        .map_err(|e| ClusterError::Bus(e.to_string()))?;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, answers.next()).await {
        got.extend(frame::read(&msg.payload).unwrap_or_default());
        if enough(&got) {
            break;
        }
    }
    Ok(got)
}

/// Every node's status, sorted by name.
pub async fn status(config: &ClusterConfig, domain: &str) -> Result<Vec<NodeStatus>, ClusterError> {
    // Done once every node that any answer says is live has answered.
    let all_in = |got: &[Entry]| {
        let names: std::collections::BTreeSet<&str> = got.iter().map(|e| e.field(0)).collect();
        !got.is_empty()
            && got
                .iter()
                .flat_map(|e| e.field(4).split(','))
                .all(|n| names.contains(n))
    };
    let got = ask(
        config,
        domain,
        Entry::new("STATUS", &[], Vec::new()),
        Duration::from_secs(3),
        all_in,
    )
    .await?;
    let mut list: Vec<NodeStatus> = got
        .iter()
        .filter(|e| e.kind == "NODE")
        .map(|e| NodeStatus {
            node: e.field(0).to_string(),
            state: e.field(1).to_string(),
            sessions: e.field(2).parse().unwrap_or(0),
            accounts: e.field(3).parse().unwrap_or(0),
            sees: e.field(4).split(',').map(str::to_string).collect(),
            unconfirmed: e.field(5).parse().unwrap_or(0),
            rooms: e
                .payload_str()
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        })
        .collect();
    list.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(list)
}

/// Ask `node` to drain; `Ok(false)` when no such node answered.
pub async fn drain(config: &ClusterConfig, domain: &str, node: &str) -> Result<bool, ClusterError> {
    let got = ask(
        config,
        domain,
        Entry::new("DRAIN", &[node], Vec::new()),
        Duration::from_secs(5),
        |got| !got.is_empty(),
    )
    .await?;
    Ok(got.iter().any(|e| e.kind == "OK" && e.field(0) == node))
}
