//! XEP-0060: Publish-Subscribe — §15 namespaces and the §10 disco features this service
//! really supports.

pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

pub const FORM_NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
pub const FORM_PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
pub const FORM_SUBSCRIBE_OPTIONS: &str = "http://jabber.org/protocol/pubsub#subscribe_options";
pub const FORM_SUBSCRIBE_AUTHORIZATION: &str =
    "http://jabber.org/protocol/pubsub#subscribe_authorization";
pub const FORM_META_DATA: &str = "http://jabber.org/protocol/pubsub#meta-data";

/// XEP-0060 §10 features (each as `pubsub#<name>`), in the order shown.
pub const FEATURES: &[&str] = &[
    "access-authorize",
    "access-open",
    "access-presence",
    "access-roster",
    "access-whitelist",
    "auto-create",
    "config-node",
    "create-and-configure",
    "create-nodes",
    "delete-items",
    "delete-nodes",
    "instant-nodes",
    "item-ids",
    "manage-subscriptions",
    "member-affiliation",
    "meta-data",
    "modify-affiliations",
    "outcast-affiliation",
    "persistent-items",
    "publish",
    "publish-only-affiliation",
    "publish-options",
    "publisher-affiliation",
    "purge-nodes",
    "retract-items",
    "retrieve-affiliations",
    "retrieve-default",
    "retrieve-default-sub",
    "retrieve-items",
    "retrieve-subscriptions",
    "subscribe",
    "subscription-notifications",
    "subscription-options",
];
