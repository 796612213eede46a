//! XEP-0157 Contact Addresses for XMPP Services: the addresses of
//! `[contact]` (abuse, admin, feedback, sales, security, status, support)
//! as an XEP-0128 form in the server's disco#info.

use async_trait::async_trait;
use minidom::Element;
use roost_core::{Module, Protocol};
use roost_proto::Elem;
use serde::{Deserialize, Serialize};

const FORM_TYPE: &str = "http://jabber.org/network/serverinfo";
const DATA: &str = "jabber:x:data";

/// `[contact]`: URIs (`mailto:`, `xmpp:`, `https:`) per purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContactConfig {
    pub abuse: Vec<String>,
    pub admin: Vec<String>,
    pub feedback: Vec<String>,
    pub sales: Vec<String>,
    pub security: Vec<String>,
    pub status: Vec<String>,
    pub support: Vec<String>,
}

pub struct ContactInfo {
    pub config: ContactConfig,
}

#[async_trait]
impl Module for ContactInfo {
    fn name(&self) -> &'static str {
        "contact-info"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new(
            "XEP-0157: Contact Addresses for XMPP Services",
            "1.1.1",
        )]
    }
    fn server_info_forms(&self) -> Vec<Element> {
        let c = &self.config;
        let fields: Vec<(&str, &Vec<String>)> = vec![
            ("abuse-addresses", &c.abuse),
            ("admin-addresses", &c.admin),
            ("feedback-addresses", &c.feedback),
            ("sales-addresses", &c.sales),
            ("security-addresses", &c.security),
            ("status-addresses", &c.status),
            ("support-addresses", &c.support),
        ];
        if fields.iter().all(|(_, v)| v.is_empty()) {
            return Vec::new();
        }
        let form = Element::bare("x", DATA)
            .attr_set("type", "result")
            .child(
                Element::bare("field", DATA)
                    .attr_set("var", "FORM_TYPE")
                    .attr_set("type", "hidden")
                    .child(Element::bare("value", DATA).text_node(FORM_TYPE)),
            )
            .children_from(fields.into_iter().filter(|(_, v)| !v.is_empty()).map(
                |(var, values)| {
                    Element::bare("field", DATA)
                        .attr_set("var", var)
                        .attr_set("type", "list-multi")
                        .children_from(
                            values
                                .iter()
                                .map(|v| Element::bare("value", DATA).text_node(v.as_str())),
                        )
                },
            ));
        vec![form]
    }
}
