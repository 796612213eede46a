//! XEP-0060: Publish-Subscribe — §4.5 access models, checked when an entity subscribes (§6.1.3)
//! or retrieves items (§6.5.9): owners, publishers and members always may;
//! outcasts and publish-only entities never may; anyone else as the node's
//! access model says. Presence and roster access ask the rosters of the
//! node's owners that are accounts of this server.

use jid::BareJid;
use roost_proto::{Condition, StanzaError};

use crate::affiliation::Affiliation;
use crate::errors::{pubsub_error, store_error};
use crate::node::config_form::AccessModel;
use crate::node::Node;
use crate::service::Shared;
use crate::subscription::{of_account, SubState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Subscribe,
    Retrieve,
}

/// `Ok` when `who` may subscribe to or read the node.
pub(crate) async fn check(
    shared: &Shared,
    node: &Node,
    who: &BareJid,
    purpose: Purpose,
) -> Result<(), StanzaError> {
    let affiliation = node.affiliation_of(who);
    // §6.1.3.8, §6.5.9.10: blocked; §4.1: publish-only may not read.
    if matches!(affiliation, Affiliation::Outcast | Affiliation::PublishOnly) {
        return Err(StanzaError::new(Condition::Forbidden));
    }
    if affiliation.is_trusted_reader() {
        return Ok(());
    }
    let cfg = node.config();
    match cfg.access_model {
        AccessModel::Open => Ok(()),
        // §6.1.3.2, §6.5.9.7
        AccessModel::Presence => {
            if owner_contact(shared, node, who, &[]).await? {
                Ok(())
            } else {
                Err(pubsub_error(
                    Condition::NotAuthorized,
                    "presence-subscription-required",
                ))
            }
        }
        // §6.1.3.3, §6.5.9.8
        AccessModel::Roster => {
            if !cfg.roster_groups_allowed.is_empty()
                && owner_contact(shared, node, who, &cfg.roster_groups_allowed).await?
            {
                Ok(())
            } else {
                Err(pubsub_error(
                    Condition::NotAuthorized,
                    "not-in-roster-group",
                ))
            }
        }
        // §6.1.3.4, §6.5.9.9
        AccessModel::Whitelist => Err(pubsub_error(Condition::NotAllowed, "closed-node")),
        AccessModel::Authorize => match purpose {
            // The request becomes pending (§6.1.2.2).
            Purpose::Subscribe => Ok(()),
            // §6.5.9.5: only subscribers read; pending is not enough.
            Purpose::Retrieve => {
                let subscribed = of_account(shared, &node.name, who)
                    .await?
                    .iter()
                    .any(|s| s.state == SubState::Subscribed.as_str());
                if subscribed {
                    Ok(())
                } else {
                    Err(pubsub_error(Condition::NotAuthorized, "not-subscribed"))
                }
            }
        },
    }
}

/// Whether a local owner of the node has `who` in its roster: with a
/// subscription to the owner's presence ("from" or "both") when `groups`
/// is empty (presence access), else in one of those roster groups (roster
/// access).
async fn owner_contact(
    shared: &Shared,
    node: &Node,
    who: &BareJid,
    groups: &[String],
) -> Result<bool, StanzaError> {
    for owner in node.with_affiliation(Affiliation::Owner) {
        if owner.domain().as_str() != shared.host || owner.node().is_none() {
            continue;
        }
        let Some(item) = shared
            .roster
            .roster_item(&owner, who)
            .await
            .map_err(store_error)?
        else {
            continue;
        };
        let allowed = if groups.is_empty() {
            item.subscription.has_from()
        } else {
            item.groups.iter().any(|g| groups.contains(g))
        };
        if allowed {
            return Ok(true);
        }
    }
    Ok(false)
}
