//! THE ordered list of feature modules. Order matters only for the order of
//! disco features; IQ routes may not overlap (checked at start).

use std::sync::Arc;

use roost_core::Module;
use roost_features::{
    adhoc, bookmarks, contact_info, disco, extdisco, kernel, last_activity, motd, pep, ping,
    private_xml, register, session, time, vcard, version,
};

/// The modules, sharing one PEP service (built by the caller, which also
/// hands `pep.bookmark_events()` to account-based MUC joining).
pub fn all(config: &crate::Config, pep: &pep::PepService) -> Vec<Arc<dyn Module>> {
    let pep = pep.clone();
    let motd = Arc::new(motd::Motd::default());
    vec![
        Arc::new(kernel::Kernel {
            account_muc: config.account_muc.enabled,
            push: config.push.enabled,
        }),
        Arc::new(disco::Disco {
            pep: Some(pep.clone()),
        }),
        Arc::new(ping::Ping),
        Arc::new(extdisco::Extdisco {
            config: config.extdisco.clone(),
        }),
        Arc::new(time::EntityTime),
        Arc::new(last_activity::LastActivity::default()),
        Arc::new(adhoc::AdHoc {
            admins: config
                .admins
                .iter()
                .filter_map(|a| jid::BareJid::new(a).ok())
                .collect(),
            motd: motd.clone(),
        }),
        Arc::new(motd::MotdDelivery { motd }),
        Arc::new(contact_info::ContactInfo {
            config: config.contact.clone(),
        }),
        Arc::new(version::Version),
        Arc::new(session::LegacySession),
        Arc::new(vcard::Vcard {
            pep: Some(pep.clone()),
        }),
        Arc::new(register::Register),
        Arc::new(pep::Pep::new(pep.clone())),
        Arc::new(bookmarks::Bookmarks),
        Arc::new(private_xml::PrivateXml::new(pep)),
    ]
}
