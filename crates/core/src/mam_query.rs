//! XEP-0313 §4 queries, shared by the personal archive (account task) and
//! room archives (MUC service): the data form's filters and XEP-0059 paging
//! turned into one `ArchiveQuery`, and the form a client may ask for.

use std::time::UNIX_EPOCH;

use jid::Jid;
use minidom::Element;
use roost_proto::{datetime, ns, Condition, Elem, StanzaError};
use roost_store::ArchiveQuery;

/// Page size when the client gives none, and the most returned at once.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 250;

/// `limits.max_mam_page`, set at start; process-wide like the limit
/// counters (the MUC service parses queries without the server's config).
static PAGE_CAP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(MAX_PAGE);

pub fn set_max_page(n: usize) {
    PAGE_CAP.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// The most messages one page returns.
pub fn max_page() -> usize {
    PAGE_CAP.load(std::sync::atomic::Ordering::Relaxed)
}

fn ms_of(value: &str) -> Result<i64, StanzaError> {
    let t = datetime::parse_xep82(value)
        .ok_or_else(|| StanzaError::bad_request("invalid timestamp"))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

/// Parse `<query xmlns='urn:xmpp:mam:2'/>`; `check_with` may refuse a
/// `with` that makes no sense for this archive.
pub fn parse(
    query: &Element,
    check_with: impl Fn(&Jid) -> Result<(), StanzaError>,
) -> Result<ArchiveQuery, StanzaError> {
    let mut q = ArchiveQuery {
        max: DEFAULT_PAGE,
        ..ArchiveQuery::default()
    };
    if let Some(form) = query.get_child("x", ns::DATA_FORMS) {
        for field in form.children().filter(|f| f.name() == "field") {
            let values: Vec<String> = field
                .children()
                .filter(|v| v.name() == "value")
                .map(|v| v.text().trim().to_string())
                .collect();
            let value = values.first().cloned().unwrap_or_default();
            match field.attr("var").unwrap_or_default() {
                "FORM_TYPE" => {
                    if value != ns::MAM {
                        return Err(StanzaError::bad_request("unknown FORM_TYPE"));
                    }
                }
                "with" => {
                    let j =
                        Jid::new(&value).map_err(|_| StanzaError::new(Condition::JidMalformed))?;
                    check_with(&j)?;
                    q.with = Some(j.to_string());
                }
                "start" => q.start_ms = Some(ms_of(&value)?),
                "end" => q.end_ms = Some(ms_of(&value)?),
                "after-id" => q.after_id = Some(value),
                "before-id" => q.before_id = Some(value),
                "ids" => q.ids = values,
                other => {
                    return Err(StanzaError::new(Condition::FeatureNotImplemented)
                        .with_text(format!("unsupported field {other}")))
                }
            }
        }
    }
    if let Some(set) = query.get_child("set", ns::RSM) {
        if let Some(max) = set.get_child("max", ns::RSM) {
            q.max = max
                .text()
                .trim()
                .parse::<usize>()
                .map_err(|_| StanzaError::bad_request("max is not a number"))?;
        }
        if let Some(after) = set.get_child("after", ns::RSM) {
            q.after_id = Some(after.text().trim().to_string());
        }
        if let Some(before) = set.get_child("before", ns::RSM) {
            // XEP-0059 §2.5: an empty <before/> asks for the last page.
            let id = before.text().trim().to_string();
            q.from_end = true;
            if !id.is_empty() {
                q.before_id = Some(id);
            }
        }
    }
    let cap = max_page();
    if q.max > cap {
        crate::limits::hit(crate::limits::Limit::MamPage);
        q.max = cap;
    }
    Ok(q)
}

/// XEP-0313 §4.1.1: the fields a client may use.
pub fn form() -> Element {
    let field = |var: &str, kind: &str| {
        Element::bare("field", ns::DATA_FORMS)
            .attr_set("var", var)
            .attr_set("type", kind)
    };
    Element::bare("query", ns::MAM).child(
        Element::bare("x", ns::DATA_FORMS)
            .attr_set("type", "form")
            .child(
                field("FORM_TYPE", "hidden")
                    .child(Element::bare("value", ns::DATA_FORMS).text_node(ns::MAM)),
            )
            .child(field("with", "jid-single"))
            .child(field("start", "text-single"))
            .child(field("end", "text-single"))
            .child(field("before-id", "text-single"))
            .child(field("after-id", "text-single"))
            .child(field("ids", "text-multi")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(xml: &str) -> Result<ArchiveQuery, StanzaError> {
        parse(&xml.parse().unwrap(), |_| Ok(()))
    }

    #[test]
    fn form_fields_and_rsm_become_one_query() {
        let a = q(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>\
            <field var='with'><value>Juliet@Capulet.lit</value></field>\
            <field var='start'><value>2001-09-09T01:46:40Z</value></field>\
            <field var='ids'><value>a</value><value>b</value></field></x>\
            <set xmlns='http://jabber.org/protocol/rsm'><max>900</max><before/></set></query>",
        )
        .unwrap();
        assert_eq!(a.with.as_deref(), Some("juliet@capulet.lit"));
        assert_eq!(a.start_ms, Some(1_000_000_000_000));
        assert_eq!(a.ids, ["a", "b"]);
        assert_eq!(a.max, MAX_PAGE);
        assert!(a.from_end && a.before_id.is_none());
    }

    #[test]
    fn bad_input_is_refused_with_the_right_condition() {
        let unknown = q("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='color'><value>red</value></field></x></query>");
        assert_eq!(
            unknown.unwrap_err().condition,
            Condition::FeatureNotImplemented
        );
        let bad_time = q("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='end'><value>soon</value></field></x></query>");
        assert_eq!(bad_time.unwrap_err().condition, Condition::BadRequest);
        let bad_max = q("<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set></query>");
        assert_eq!(bad_max.unwrap_err().condition, Condition::BadRequest);
        let refused = parse(
            &"<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='with'><value>a@b</value></field></x></query>".parse().unwrap(),
            |_| Err(StanzaError::bad_request("no")),
        );
        assert!(refused.is_err());
    }
}
