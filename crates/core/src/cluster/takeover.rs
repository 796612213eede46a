//! When the cluster changes (a node joins, drains, leaves or dies), every
//! node puts ownership right by the new view:
//!
//! 1. For a node that is gone: the sessions it had bound to accounts owned
//!    here are unbound (their contacts see them go), and stanzas it had
//!    not made safe are routed again.
//! 2. Account tasks and room tasks this node no longer owns end; the
//!    accounts' queued messages follow to the new owner, and rooms start
//!    again there from storage (configuration, affiliations, archive).
//! 3. Sessions on this node whose account moved bind again at the new
//!    owner, with their last presence and the rooms they had joined: the
//!    account joins those rooms again, and the client sees at most a
//!    rejoin.
//! 4. Accounts still owned here check their rooms at once (XEP-0410
//!    self-ping), since rooms may have moved, and rejoin where the room
//!    no longer knows them.

use std::sync::Arc;

use jid::BareJid;
use tokio::sync::oneshot;

use super::membership::View;
use super::Cluster;
use crate::account::AccountMsg;
use crate::server::Server;

pub(super) fn spawn(cluster: &Arc<Cluster>) {
    let c = cluster.clone();
    let mut changes = cluster.membership.subscribe();
    tokio::spawn(async move {
        let mut old = changes.borrow_and_update().clone();
        while changes.changed().await.is_ok() {
            let new = changes.borrow_and_update().clone();
            let Some(server) = c.server.upgrade() else {
                return;
            };
            if server.is_shutting_down() {
                return;
            }
            tracing::info!(nodes = ?new.live, owners = ?new.owners, "cluster view changed");
            apply(&c, &server, &old, &new);
            old = new;
        }
    });
}

fn apply(c: &Arc<Cluster>, server: &Arc<Server>, old: &View, new: &View) {
    // 1. Nodes gone.
    // Gone: not live any more, or restarted (a new process under the
    // same name has none of the old one's sessions or tasks).
    for gone in old.live.iter().filter(|n| !new.still_has(old, n)) {
        let mut sessions = c.take_remote(gone);
        if let Some(backed) = c.backups().remove(gone) {
            sessions.extend(backed.into_iter().map(|(id, (a, r))| (id, a, r)));
        }
        tracing::warn!(node = %gone, sessions = sessions.len(), "cluster node gone; its sessions vanish");
        for (id, account, resource) in sessions {
            server.send_to_account(
                &account,
                AccountMsg::Vanished {
                    resource,
                    session_id: id,
                },
            );
        }
        for redo in c.node_gone(gone) {
            super::links::redo(server, redo);
        }
    }
    let me = c.node.clone();
    let mine = |key: &str| new.owner(key).is_some_and(|n| *n == me);
    // 2. Tasks no longer ours.
    let mut kept = Vec::new();
    for account in server.router.active_accounts() {
        if mine(account.as_str()) {
            kept.push(account);
        } else if let Some(h) = server.router.running_account(&account) {
            let _ = h.send(AccountMsg::Handoff);
        }
    }
    c.retain_remote(|a| mine(a.as_str()));
    // Backups this node no longer has to keep: it is not next in line
    // after their owner any more (or the owner is not theirs any more).
    {
        let mut backups = c.backups();
        for (origin, sessions) in backups.iter_mut() {
            sessions.retain(|_, (account, _)| {
                let owner_is_origin = new.owner(account.as_str()).is_some_and(|o| o == origin);
                let next = new.next_after(origin, account.as_str());
                owner_is_origin && next.is_some_and(|n| *n == me)
            });
        }
        backups.retain(|_, sessions| !sessions.is_empty());
    }
    server.router.release_services(&|room: &str| mine(room));
    // 3. Our sessions whose account moved.
    let moved: Vec<u64> = {
        let local = c.local.lock().unwrap_or_else(|p| p.into_inner());
        local
            .by_id
            .iter()
            .filter(|(_, s)| {
                old.owner_instance(s.account.as_str()) != new.owner_instance(s.account.as_str())
            })
            .map(|(id, _)| *id)
            .collect()
    };
    for id in moved {
        rebind(c, server, id);
    }
    // Sessions of accounts owned here whose backup node changed.
    let backed: Vec<(BareJid, String, u64)> = {
        let local = c.local.lock().unwrap_or_else(|p| p.into_inner());
        local
            .by_id
            .values()
            .filter(|s| mine(s.account.as_str()))
            .filter(|s| {
                c.backup_of(old, s.account.as_str()) != c.backup_of(new, s.account.as_str())
            })
            .map(|s| (s.account.clone(), s.resource.clone(), s.handle.id))
            .collect()
    };
    for (account, resource, id) in backed {
        if let Some(b) = c.backup_of(new, account.as_str()) {
            let e = super::frame::Entry::new(
                "RB",
                &[account.as_str(), &resource, &id.to_string()],
                Vec::new(),
            );
            c.push(&b, super::links::Out::Entry(e));
        }
    }
    // 4. Rooms may have moved.
    for account in kept {
        server.send_to_account(&account, AccountMsg::CheckRooms);
    }
}

/// Bind a session of this node again at its account's (new) owner, then
/// replay its presence and its room joins as if the client sent them.
fn rebind(c: &Arc<Cluster>, server: &Arc<Server>, id: u64) {
    let (handle, account, resource, inline, presence, rooms) = {
        let local = c.local.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = local.by_id.get(&id) else {
            return;
        };
        (
            s.handle.clone(),
            s.account.clone(),
            s.resource.clone(),
            s.inline,
            s.presence.clone(),
            s.rooms.values().cloned().collect::<Vec<_>>(),
        )
    };
    let server = server.clone();
    tokio::spawn(async move {
        let (tx, rx) = oneshot::channel();
        server.send_to_account(
            &account,
            AccountMsg::Bind {
                resource: resource.clone(),
                handle: handle.clone(),
                inline: inline.map(Box::new),
                reply: tx,
            },
        );
        match rx.await {
            Ok(Some(_)) => {}
            Ok(None) => {
                handle.close(
                    roost_proto::StreamError::ResourceConstraint,
                    "too many resources bound",
                );
                return;
            }
            Err(_) => {
                tracing::warn!(session = %handle.jid, "could not bind again after a cluster change");
                handle.close(
                    roost_proto::StreamError::SystemShutdown,
                    "the cluster changed; connect again",
                );
                return;
            }
        }
        tracing::info!(session = %handle.jid, "bound again at the account's new owner");
        for el in presence.into_iter().chain(rooms) {
            if let Ok(stanza) = roost_proto::Stanza::parse(el) {
                server.send_to_account(
                    &account,
                    AccountMsg::FromSession {
                        resource: resource.clone(),
                        stanza,
                    },
                );
            }
        }
    });
}
