//! Ties XEP-0402 bookmarks (the PEP module) to account-based MUC joining
//! (the account task): every change of an account's bookmarks is sent to
//! its task as the whole list, all autojoin bookmarks are replayed at
//! start, and nick changes in bookmarked rooms are written back
//! (ACCOUNT-MUC rule 13).

use std::sync::Arc;

use jid::BareJid;
use roost_core::account::{AccountMsg, BookmarkNicks, RoomBookmark};
use roost_core::Server;
use roost_features::bookmarks::{self, Bookmark};
use roost_features::pep::PepService;

const NODE: &str = "urn:xmpp:bookmarks:1";

fn for_account(list: Vec<Bookmark>) -> Vec<RoomBookmark> {
    list.into_iter()
        .map(|b| RoomBookmark {
            room: b.jid,
            nick: b.nick,
            password: b.password,
            autojoin: b.autojoin,
            push: roost_core::account::push::room_policy(&b.extensions),
        })
        .collect()
}

async fn send_bookmarks(server: &Arc<Server>, account: &BareJid, only_if_autojoin: bool) {
    match bookmarks::bookmarks(server, account).await {
        Ok(list) => {
            if only_if_autojoin && !list.iter().any(|b| b.autojoin) {
                return;
            }
            server.send_to_account(account, AccountMsg::Bookmarks(for_account(list)));
        }
        Err(e) => tracing::error!(%account, error = %e, "bookmarks unreadable"),
    }
}

/// Start forwarding bookmark changes and join the bookmarked rooms now.
pub fn spawn(server: &Arc<Server>, pep: &PepService) {
    let cfg = &server.config.account_muc;
    if !cfg.enabled || !cfg.persist_bookmarked {
        return;
    }
    let _ = server
        .bookmark_nicks
        .set(Arc::new(NickWriter { pep: pep.clone() }));
    let mut events = pep.bookmark_events().subscribe();
    let s = server.clone();
    tokio::spawn(async move {
        let mut shutdown = s.shutdown_signal();
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                _ = roost_core::server::until_shutdown(&mut shutdown) => return,
            };
            match event {
                Ok(ev) => send_bookmarks(&s, &ev.account, false).await,
                // Missed some: nothing tells which accounts; the next change
                // of each resynchronises it, and restarts replay everything.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "bookmark events missed");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let s = server.clone();
    tokio::spawn(async move {
        // In a cluster each node replays the accounts it owns.
        replay(&s, |account| {
            s.cluster.get().is_none_or(|c| c.owns(account.as_str()))
        })
        .await;
    });
    if let Some(cluster) = server.cluster.get() {
        spawn_takeover_replay(server, cluster);
    }
}

/// Join the autojoin bookmarks of the accounts `which` picks.
async fn replay(server: &Arc<Server>, which: impl Fn(&BareJid) -> bool) {
    let accounts = match server
        .stores
        .accounts
        .list_accounts(Some(&server.config.domain))
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot list accounts for bookmark autojoin");
            return;
        }
    };
    for account in accounts.iter().filter(|a| which(a)) {
        send_bookmarks(server, account, true).await;
    }
}

/// In a cluster: accounts that move to this node (their owner died or
/// drained) join their bookmarked rooms from here, whether or not they
/// have a session (ACCOUNT-MUC rule 13).
fn spawn_takeover_replay(server: &Arc<Server>, cluster: &Arc<roost_core::cluster::Cluster>) {
    let s = server.clone();
    let c = cluster.clone();
    let mut changes = cluster.subscribe_view();
    tokio::spawn(async move {
        let mut old = changes.borrow_and_update().clone();
        while changes.changed().await.is_ok() {
            let new = changes.borrow_and_update().clone();
            if s.is_shutting_down() {
                return;
            }
            replay(&s, |account| {
                let key = account.as_str();
                let now_ours = new.owner(key).is_some_and(|n| *n == c.node);
                let was_ours = old.owner(key).is_some_and(|n| *n == c.node);
                now_ours && !was_ours
            })
            .await;
            old = new;
        }
    });
}

struct NickWriter {
    pep: PepService,
}

impl BookmarkNicks for NickWriter {
    fn nick_changed(&self, server: Arc<Server>, account: BareJid, room: BareJid, nick: String) {
        let pep = self.pep.clone();
        tokio::spawn(async move {
            let Ok(list) = bookmarks::bookmarks(&server, &account).await else {
                return;
            };
            let Some(mut bm) = list.into_iter().find(|b| b.jid == room) else {
                return;
            };
            if bm.nick.as_deref() == Some(nick.as_str()) {
                return;
            }
            bm.nick = Some(nick);
            let payload = bm.to_payload();
            if let Err(e) = roost_features::pep::publish::publish_item(
                &server,
                &pep,
                &account,
                NODE,
                Some(room.as_str()),
                payload,
                None,
                account.as_str(),
            )
            .await
            {
                tracing::warn!(%account, %room, error = %e, "bookmark nick not written back");
            }
        });
    }
}
