//! XEP-0060: Publish-Subscribe — §6.3–§6.4 subscription options (`pubsub#subscribe_options`):
//! read, changed and defaulted per subscription.
//!
//! `pubsub#deliver` acts (no notifications when false). `pubsub#digest`,
//! `pubsub#digest_frequency`, `pubsub#expire`, `pubsub#include_body` and
//! `pubsub#show-values` are stored and shown but inert: the service sends
//! no digests and does not see subscribers' presence. `pubsub#subscription_type`
//! only matters for collections, which this service does not have.

use jid::Jid;
use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::data_form::{bool_str, boolean, field, form, form_type, options, single, Form};
use roost_proto::{Condition, Elem, StanzaError};
use serde::{Deserialize, Serialize};

use crate::errors::{nodeid_required, pubsub_error, store_error};
use crate::ns;
use crate::request::Request;
use crate::subscription::of_account;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SubscribeOptions {
    pub deliver: bool,
    pub digest: bool,
    pub digest_frequency: String,
    pub expire: String,
    pub include_body: bool,
    pub show_values: Vec<String>,
    pub subscription_type: String,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            deliver: true,
            digest: false,
            digest_frequency: String::new(),
            expire: String::new(),
            include_body: false,
            show_values: ["online", "chat", "away", "xa", "dnd"]
                .map(String::from)
                .to_vec(),
            subscription_type: "items".into(),
        }
    }
}

const SHOW_VALUES: [&str; 5] = ["away", "chat", "dnd", "online", "xa"];

impl SubscribeOptions {
    pub fn to_text(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Options that cannot be read are the defaults (delivery on).
    pub fn from_text(text: &str) -> SubscribeOptions {
        toml::from_str(text).unwrap_or_default()
    }

    /// §6.3.5: apply a submitted form; nothing changes when a field is
    /// wrong (`None` then).
    pub fn apply(&self, form: &Form) -> Option<SubscribeOptions> {
        if form
            .form_type
            .as_deref()
            .is_some_and(|t| t != ns::FORM_SUBSCRIBE_OPTIONS)
        {
            return None;
        }
        let mut next = self.clone();
        for (var, values) in &form.fields {
            match var.as_str() {
                "pubsub#deliver" => next.deliver = boolean(values)?,
                "pubsub#digest" => next.digest = boolean(values)?,
                "pubsub#include_body" => next.include_body = boolean(values)?,
                "pubsub#digest_frequency" => {
                    next.digest_frequency = single(values).unwrap_or_default().into()
                }
                "pubsub#expire" => next.expire = single(values).unwrap_or_default().into(),
                "pubsub#show-values" => {
                    if values.iter().any(|v| !SHOW_VALUES.contains(&v.as_str())) {
                        return None;
                    }
                    next.show_values = values.clone();
                }
                "pubsub#subscription_type" => match single(values)? {
                    t @ ("items" | "nodes") => next.subscription_type = t.into(),
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some(next)
    }

    pub fn to_form(&self, kind: &str) -> Element {
        let shows: Vec<&str> = self.show_values.iter().map(String::as_str).collect();
        form(
            kind,
            [
                form_type(ns::FORM_SUBSCRIBE_OPTIONS),
                field(
                    "pubsub#deliver",
                    "boolean",
                    Some("Enable delivery?"),
                    &[bool_str(self.deliver)],
                ),
                field(
                    "pubsub#digest",
                    "boolean",
                    Some("Receive digest notifications (not sent)"),
                    &[bool_str(self.digest)],
                ),
                field(
                    "pubsub#digest_frequency",
                    "text-single",
                    Some("Digest frequency in milliseconds"),
                    &[&self.digest_frequency],
                ),
                field(
                    "pubsub#expire",
                    "text-single",
                    Some("Requested lease period (not enforced)"),
                    &[&self.expire],
                ),
                field(
                    "pubsub#include_body",
                    "boolean",
                    Some("Receive message body in addition to payload?"),
                    &[bool_str(self.include_body)],
                ),
                field(
                    "pubsub#show-values",
                    "list-multi",
                    Some("Presence states for which notifications are wanted"),
                    &shows,
                )
                .children_from(options(&SHOW_VALUES)),
                field(
                    "pubsub#subscription_type",
                    "list-single",
                    Some("Notifications of items or of nodes"),
                    &[&self.subscription_type],
                )
                .children_from(options(&["items", "nodes"])),
            ],
        )
    }
}

/// The `<options/>` element of one subscription (§6.3.2).
fn options_element(node: &str, jid: &Jid, subid: &str, opts: &SubscribeOptions) -> Element {
    Element::bare("options", ns::PUBSUB)
        .attr_set("node", node)
        .attr_set("jid", jid.to_string())
        .attr_set("subid", subid)
        .child(opts.to_form("form"))
}

/// The subscription an `<options/>` request is about, after the checks of
/// §6.3.4: node, matching JID, existing subscription, SubID.
async fn target(
    req: &Request<'_>,
    verb: &Element,
) -> Result<(String, roost_store::StoredSubscription), StanzaError> {
    let node = verb.attr("node").ok_or_else(nodeid_required)?;
    req.node(node).await?;
    let jid = verb
        .attr("jid")
        .ok_or_else(|| pubsub_error(Condition::BadRequest, "jid-required"))?;
    let jid = Jid::new(jid).map_err(|_| pubsub_error(Condition::BadRequest, "invalid-jid"))?;
    // §6.3.4.2: only for oneself.
    if jid.to_bare() != req.requester {
        return Err(StanzaError::new(Condition::Forbidden));
    }
    let sub = of_account(req.shared, node, &req.requester)
        .await?
        .into_iter()
        .find(|s| s.jid == jid)
        .ok_or_else(|| pubsub_error(Condition::UnexpectedRequest, "not-subscribed"))?;
    if verb.attr("subid").is_some_and(|id| id != sub.subid) {
        return Err(pubsub_error(Condition::NotAcceptable, "invalid-subid"));
    }
    Ok((node.to_string(), sub))
}

/// §6.3.2: the options form of a subscription.
pub(crate) async fn get(req: &Request<'_>, verb: &Element) -> IqResult {
    let (node, sub) = target(req, verb).await?;
    let opts = SubscribeOptions::from_text(&sub.options);
    Ok(Some(Element::bare("pubsub", ns::PUBSUB).child(
        options_element(&node, &sub.jid, &sub.subid, &opts),
    )))
}

/// §6.3.5: submit the options form.
pub(crate) async fn set(req: &Request<'_>, verb: &Element) -> IqResult {
    let (node, sub) = target(req, verb).await?;
    let form = Form::inside(verb).ok_or_else(|| StanzaError::bad_request("no data form"))?;
    let opts = SubscribeOptions::from_text(&sub.options)
        .apply(&form)
        .ok_or_else(|| pubsub_error(Condition::BadRequest, "invalid-options"))?;
    let sub = roost_store::StoredSubscription {
        options: opts.to_text(),
        ..sub
    };
    req.shared
        .store
        .put_subscription(&req.shared.jid, &node, &sub)
        .await
        .map_err(store_error)?;
    Ok(None)
}

/// §6.4: the default subscription options, of the service or of a node.
pub(crate) async fn default(req: &Request<'_>, verb: &Element) -> IqResult {
    if let Some(node) = verb.attr("node") {
        req.node(node).await?;
    }
    let default = Element::bare("default", ns::PUBSUB)
        .attr_opt("node", verb.attr("node"))
        .child(SubscribeOptions::default().to_form("form"));
    Ok(Some(Element::bare("pubsub", ns::PUBSUB).child(default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted(fields: &[(&str, &[&str])]) -> Form {
        Form {
            form_type: Some(ns::FORM_SUBSCRIBE_OPTIONS.into()),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    #[test]
    fn options_apply_and_round_trip() {
        let opts = SubscribeOptions::default()
            .apply(&submitted(&[
                ("pubsub#deliver", &["false"]),
                ("pubsub#show-values", &["chat", "online"]),
            ]))
            .unwrap();
        assert!(!opts.deliver);
        assert_eq!(SubscribeOptions::from_text(&opts.to_text()), opts);
        let shown = Form::parse(&opts.to_form("form"));
        assert_eq!(SubscribeOptions::default().apply(&shown), Some(opts));
    }

    #[test]
    fn bad_options_are_refused() {
        for (var, values) in [
            ("pubsub#deliver", &["maybe"][..]),
            ("pubsub#show-values", &["asleep"][..]),
            ("pubsub#subscription_type", &["all"][..]),
            ("pubsub#unknown", &["1"][..]),
        ] {
            assert_eq!(
                SubscribeOptions::default().apply(&submitted(&[(var, values)])),
                None,
                "{var}"
            );
        }
    }
}
