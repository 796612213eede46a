//! THE ordered list of feature modules. Order matters only for the order of
//! disco features; IQ routes may not overlap (checked at start).

use std::sync::Arc;

use roost_core::Module;
use roost_features::{disco, kernel, ping, register, session, vcard, version};

pub fn all(config: &crate::Config) -> Vec<Arc<dyn Module>> {
    vec![
        Arc::new(kernel::Kernel {
            account_muc: config.account_muc.enabled,
        }),
        Arc::new(disco::Disco),
        Arc::new(ping::Ping),
        Arc::new(version::Version),
        Arc::new(session::LegacySession),
        Arc::new(vcard::Vcard),
        Arc::new(register::Register),
    ]
}
