//! XEP-0060: Publish-Subscribe — §5.1–§5.5 with XEP-0030: the service's identity and features,
//! its nodes, a node's identity and meta-data form (§5.4), and a node's
//! items (§5.5).

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::data_form::{field, form, form_type};
use roost_proto::{ns as core_ns, Elem};

use crate::access::{self, Purpose};
use crate::affiliation::Affiliation;
use crate::errors::store_error;
use crate::node::config_form::{text_of, AccessModel};
use crate::node::{Node, NodeRecord};
use crate::request::Request;
use crate::{notify, ns};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn identity(kind: &str, name: Option<&str>) -> Element {
    Element::bare("identity", core_ns::DISCO_INFO)
        .attr_set("category", "pubsub")
        .attr_set("type", kind)
        .attr_opt("name", name)
}

fn feature(var: &str) -> Element {
    Element::bare("feature", core_ns::DISCO_INFO).attr_set("var", var)
}

/// §5.1 (service) and §5.3–§5.4 (node).
pub(crate) async fn info(req: &Request<'_>, query: &Element) -> IqResult {
    let Some(name) = query.attr("node") else {
        let mut features: Vec<String> = vec![
            core_ns::DISCO_INFO.into(),
            core_ns::DISCO_ITEMS.into(),
            core_ns::PING.into(),
            ns::PUBSUB.into(),
        ];
        features.extend(ns::FEATURES.iter().map(|f| format!("{}#{f}", ns::PUBSUB)));
        return Ok(Some(
            Element::bare("query", core_ns::DISCO_INFO)
                .child(identity("service", Some(&req.shared.config.name)))
                .children_from(features.iter().map(|f| feature(f))),
        ));
    };
    let node = req.node(name).await?;
    let meta = meta_data(req, &node).await?;
    Ok(Some(
        Element::bare("query", core_ns::DISCO_INFO)
            .attr_set("node", name)
            .child(identity("leaf", None))
            .child(feature(core_ns::DISCO_INFO))
            .child(feature(core_ns::DISCO_ITEMS))
            .child(feature(ns::PUBSUB))
            .child(meta),
    ))
}

/// §5.4: the node meta-data form.
async fn meta_data(req: &Request<'_>, node: &Node) -> Result<Element, roost_proto::StanzaError> {
    let shared = req.shared;
    let cfg = node.config();
    let record: &NodeRecord = &node.record;
    let subscribers = notify::receivers(shared, &node.name)
        .await?
        .len()
        .to_string();
    let created = roost_proto::datetime::to_xep82(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(record.created_ms.max(0) as u64),
    );
    let jids = |a| -> Vec<String> {
        node.with_affiliation(a)
            .iter()
            .map(|j| j.to_string())
            .collect()
    };
    let (owners, publishers) = (jids(Affiliation::Owner), jids(Affiliation::Publisher));
    let access = text_of(&cfg.access_model);
    let publish = text_of(&cfg.publish_model);
    let max_items = cfg.item_cap(&shared.limits).to_string();
    Ok(form(
        "result",
        [
            form_type(ns::FORM_META_DATA),
            field("pubsub#type", "text-single", None, &[&cfg.payload_type]),
            field("pubsub#title", "text-single", None, &[&cfg.title]),
            field(
                "pubsub#description",
                "text-single",
                None,
                &[&cfg.description],
            ),
            field("pubsub#language", "text-single", None, &[&cfg.language]),
            field("pubsub#contact", "jid-multi", None, &strs(&cfg.contact)),
            field("pubsub#creator", "jid-single", None, &[&record.creator]),
            field("pubsub#creation_date", "text-single", None, &[&created]),
            field("pubsub#owner", "jid-multi", None, &strs(&owners)),
            field("pubsub#publisher", "jid-multi", None, &strs(&publishers)),
            field(
                "pubsub#num_subscribers",
                "text-single",
                None,
                &[&subscribers],
            ),
            field("pubsub#access_model", "list-single", None, &[&access]),
            field("pubsub#publish_model", "list-single", None, &[&publish]),
            field("pubsub#max_items", "text-single", None, &[&max_items]),
        ],
    ))
}

/// §5.2 (the nodes, but not whitelisted ones the requester is not on) and
/// §5.5 (a node's items, for those who may read them).
pub(crate) async fn items(req: &Request<'_>, query: &Element) -> IqResult {
    let shared = req.shared;
    let service = shared.jid.as_str();
    let Some(name) = query.attr("node") else {
        let stored = shared.store.nodes(&shared.jid).await.map_err(store_error)?;
        let mut items = Vec::new();
        for n in stored {
            let record = NodeRecord::from_text(&n.name, &n.config);
            if record.config.access_model == AccessModel::Whitelist {
                let visible = shared
                    .load_node(&n.name)
                    .await?
                    .is_some_and(|node| node.affiliation_of(&req.requester).is_trusted_reader());
                if !visible {
                    continue;
                }
            }
            let title = Some(record.config.title.as_str()).filter(|t| !t.is_empty());
            items.push(
                Element::bare("item", core_ns::DISCO_ITEMS)
                    .attr_set("jid", service)
                    .attr_set("node", n.name.as_str())
                    .attr_opt("name", title),
            );
        }
        return Ok(Some(
            Element::bare("query", core_ns::DISCO_ITEMS).children_from(items),
        ));
    };
    let node = req.node(name).await?;
    access::check(shared, &node, &req.requester, Purpose::Retrieve).await?;
    let mut stored = shared
        .store
        .items(&shared.jid, name, None)
        .await
        .map_err(store_error)?;
    stored.reverse();
    Ok(Some(
        Element::bare("query", core_ns::DISCO_ITEMS)
            .attr_set("node", name)
            .children_from(stored.into_iter().map(|i| {
                Element::bare("item", core_ns::DISCO_ITEMS)
                    .attr_set("jid", service)
                    .attr_set("name", i.id)
            })),
    ))
}
