//! XEP-0045 §6.1–§6.3 with XEP-0030: the service's identity and features,
//! and the list of public rooms. (A room's own disco#info is built by the
//! room, `room/iq.rs`, from its live state.)

use minidom::Element;
use roost_proto::Elem;
use roost_store::StoredRoom;

use crate::ns;
use crate::room::Settings;

pub(crate) fn identity(name: &str) -> Element {
    Element::bare("identity", ns::DISCO_INFO)
        .attr_set("category", "conference")
        .attr_set("type", "text")
        .attr_set("name", name)
}

pub(crate) fn feature(var: &str) -> Element {
    Element::bare("feature", ns::DISCO_INFO).attr_set("var", var)
}

/// §6.2: what the service supports. XEP-0421 §3: every room gives
/// occupant ids, so the service announces it too.
pub(crate) fn service_info(name: &str) -> Element {
    let mut features = vec![
        ns::DISCO_INFO,
        ns::DISCO_ITEMS,
        ns::MUC,
        ns::MUC_STABLE_ID,
        ns::OCCUPANT_ID,
        ns::PING,
        ns::VCARD,
    ];
    features.sort_unstable();
    Element::bare("query", ns::DISCO_INFO)
        .child(identity(name))
        .children_from(features.into_iter().map(feature))
}

/// §6.3: public, unlocked rooms, with their natural-language names.
pub(crate) fn service_items(rooms: &[StoredRoom]) -> Element {
    let items = rooms.iter().filter_map(|r| {
        let settings = Settings::parse(&r.settings);
        if settings.locked || !settings.config.public {
            return None;
        }
        let name = if settings.config.name.is_empty() {
            r.jid.node().map(|n| n.to_string()).unwrap_or_default()
        } else {
            settings.config.name.clone()
        };
        Some(
            Element::bare("item", ns::DISCO_ITEMS)
                .attr_set("jid", r.jid.as_str())
                .attr_set("name", name),
        )
    });
    Element::bare("query", ns::DISCO_ITEMS).children_from(items)
}
