//! Protocols implemented inside the kernel (the c2s and account tasks),
//! declared here so that service discovery and the docs list them like any
//! module's: RFC 6121 roster and presence, XEP-0198, XEP-0280, XEP-0191,
//! XEP-0313, XEP-0352, XEP-0160, XEP-0203, XEP-0357 (account/push.rs),
//! components (XEP-0114) and federation (XEP-0178, XEP-0185, XEP-0220,
//! XEP-0288).

use async_trait::async_trait;
use roost_core::{Module, Protocol};
use roost_proto::ns;

pub struct Kernel {
    /// `[account_muc] enabled`: advertise account-based MUC joining.
    pub account_muc: bool,
    /// `[push] enabled`: advertise XEP-0357 on accounts.
    pub push: bool,
}

#[async_trait]
impl Module for Kernel {
    fn name(&self) -> &'static str {
        "kernel"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![
            Protocol::new("RFC 6120: XMPP Core", ""),
            Protocol::new("RFC 6121: XMPP Instant Messaging and Presence", ""),
            Protocol::new(
                "XEP-0160: Best Practices for Handling Offline Messages",
                "1.0.1",
            ),
            Protocol::new("XEP-0191: Blocking Command", "1.3"),
            Protocol::new("XEP-0198: Stream Management", "1.6.2"),
            Protocol::new("XEP-0203: Delayed Delivery", "2.0"),
            Protocol::new("XEP-0280: Message Carbons", "1.0.1"),
            Protocol::new("XEP-0297: Stanza Forwarding", "1.0"),
            Protocol::new("XEP-0313: Message Archive Management", "1.1.1"),
            Protocol::new("XEP-0352: Client State Indication", "1.0.0"),
            Protocol::new("XEP-0359: Unique and Stable Stanza IDs", "0.7.0"),
            Protocol::new(
                "XEP-0334: Message Processing Hints (no-copy, no-store)",
                "0.3.0",
            ),
            Protocol::new("XEP-0368: SRV records for XMPP over TLS", "1.1.0"),
            Protocol::new("Account-based MUC joining (urn:roost:account-muc:0)", "0"),
            Protocol::new("XEP-0357: Push Notifications", "0.4.1"),
            Protocol::new("XEP-0363: HTTP File Upload (upload/)", "1.2.0"),
            Protocol::new("XEP-0065: SOCKS5 Bytestreams (proxy65/)", "1.8.2"),
            Protocol::new("XEP-0388: Extensible SASL Profile", "1.0.4"),
            Protocol::new("XEP-0386: Bind 2", "1.1.0"),
            Protocol::new("XEP-0484: Fast Authentication Streamlining Tokens", "0.2.0"),
            Protocol::new("XEP-0440: SASL Channel-Binding Type Capability", "1.0.0"),
            Protocol::new("XEP-0474: SASL SCRAM Downgrade Protection", "0.5.0"),
            Protocol::new("XEP-0114: Jabber Component Protocol", "1.6"),
            Protocol::new(
                "XEP-0178: Best Practices for Use of SASL EXTERNAL with Certificates",
                "1.2",
            ),
            Protocol::new("XEP-0185: Dialback Key Generation and Validation", "1.0"),
            Protocol::new("XEP-0220: Server Dialback", "1.1.1"),
            Protocol::new(
                "XEP-0288: Bidirectional Server-to-Server Connections",
                "1.0.1",
            ),
        ]
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![ns::CARBONS, ns::BLOCKING, "msgoffline"]
    }
    fn account_features(&self) -> Vec<&'static str> {
        let mut f = vec![ns::MAM, "urn:xmpp:mam:2#extended", ns::SID];
        if self.account_muc {
            // Our own namespace: rooms joined by any session of this
            // account have the account as their single occupant.
            f.push(roost_core::account::ACCOUNT_MUC_FEATURE);
        }
        if self.push {
            f.push(roost_core::account::PUSH_NS);
        }
        f
    }
}
