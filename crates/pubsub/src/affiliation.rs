//! XEP-0060: Publish-Subscribe — §4.1 affiliations and what each allows, with the use cases
//! that read them: an entity's own affiliations (§5.7) and the owner's
//! management of a node's affiliations (§8.9).

use jid::BareJid;
use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::{Condition, Elem, StanzaError};

use crate::errors::{nodeid_required, pubsub_error, store_error};
use crate::ns;
use crate::request::Request;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Affiliation {
    Owner,
    Publisher,
    PublishOnly,
    Member,
    None,
    Outcast,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Publisher => "publisher",
            Affiliation::PublishOnly => "publish-only",
            Affiliation::Member => "member",
            Affiliation::None => "none",
            Affiliation::Outcast => "outcast",
        }
    }

    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "owner" => Affiliation::Owner,
            "publisher" => Affiliation::Publisher,
            "publish-only" => Affiliation::PublishOnly,
            "member" => Affiliation::Member,
            "none" => Affiliation::None,
            "outcast" => Affiliation::Outcast,
            _ => return None,
        })
    }

    /// §4.1 table: may publish under the "publishers" model.
    pub fn publishes(self) -> bool {
        matches!(
            self,
            Affiliation::Owner | Affiliation::Publisher | Affiliation::PublishOnly
        )
    }

    /// Subscribes and retrieves items whatever the access model: owners,
    /// publishers and members (§4.5: a whitelist is the members).
    pub fn is_trusted_reader(self) -> bool {
        matches!(
            self,
            Affiliation::Owner | Affiliation::Publisher | Affiliation::Member
        )
    }
}

/// §5.7: the requester's affiliations, with every node or with one.
pub(crate) async fn own_affiliations(req: &Request<'_>, verb: &Element) -> IqResult {
    let shared = req.shared;
    let mut list = shared
        .store
        .affiliations_of(&shared.jid, &req.requester)
        .await
        .map_err(store_error)?;
    if let Some(node) = verb.attr("node") {
        list.retain(|(n, _)| n == node);
    }
    let affiliations = Element::bare("affiliations", ns::PUBSUB)
        .attr_opt("node", verb.attr("node"))
        .children_from(list.into_iter().map(|(node, affiliation)| {
            Element::bare("affiliation", ns::PUBSUB)
                .attr_set("node", node)
                .attr_set("affiliation", affiliation)
        }));
    Ok(Some(
        Element::bare("pubsub", ns::PUBSUB).child(affiliations),
    ))
}

/// §8.9.1: the owner reads a node's affiliations.
pub(crate) async fn list(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let node = req.owned_node(name).await?;
    let affiliations = Element::bare("affiliations", ns::OWNER)
        .attr_set("node", name)
        .children_from(node.affiliations.iter().map(|a| {
            Element::bare("affiliation", ns::OWNER)
                .attr_set("jid", a.jid.as_str())
                .attr_set("affiliation", a.affiliation.as_str())
        }));
    Ok(Some(Element::bare("pubsub", ns::OWNER).child(affiliations)))
}

/// §8.9.2: the owner changes affiliations. All entries are checked first;
/// a node is never left without an owner (§8.9.2.4). Outcasts lose their
/// subscriptions; each entity whose affiliation changed is told (§8.9.4).
pub(crate) async fn modify(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let node = req.owned_node(name).await?;
    let mut changes: Vec<(BareJid, Affiliation)> = Vec::new();
    for entry in verb.children().filter(|c| c.is("affiliation", ns::OWNER)) {
        let jid = entry
            .attr("jid")
            .and_then(|j| BareJid::new(j).ok())
            .ok_or_else(|| pubsub_error(Condition::BadRequest, "invalid-jid"))?;
        let affiliation = entry
            .attr("affiliation")
            .and_then(Affiliation::parse)
            .ok_or_else(|| StanzaError::bad_request("unknown affiliation"))?;
        changes.push((jid, affiliation));
    }
    let mut owners = node.with_affiliation(Affiliation::Owner);
    for (jid, affiliation) in &changes {
        owners.retain(|o| o != jid);
        if *affiliation == Affiliation::Owner {
            owners.push(jid.clone());
        }
    }
    if owners.is_empty() {
        return Err(
            StanzaError::new(Condition::NotAcceptable).with_text("a node keeps at least one owner")
        );
    }
    let shared = req.shared;
    for (jid, affiliation) in changes {
        let stored = (affiliation != Affiliation::None).then(|| affiliation.as_str());
        shared
            .store
            .set_node_affiliation(&shared.jid, name, &jid, stored)
            .await
            .map_err(store_error)?;
        if affiliation == Affiliation::Outcast {
            crate::subscription::remove_account(shared, name, &jid).await?;
        }
        shared.send(crate::notify::affiliation_changed(
            shared,
            name,
            &jid,
            affiliation,
        ));
    }
    Ok(None)
}
