//! XEP-0220 Server Dialback, with keys per XEP-0185: the receiving server
//! asks the originating domain's authoritative server whether a key it was
//! given on a stream is one that server made, which proves (as far as DNS
//! can) that the stream really comes from that domain.
//!
//! Keys are `HMAC-SHA256(SHA256(secret), receiving ' ' originating ' ' id)`
//! in hex (XEP-0185 §3), so nothing needs to be remembered per stream: the
//! secret is random per process, and a key is checked by making it again.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Namespace of `<db:result/>` and `<db:verify/>`.
pub const NS: &str = "jabber:server:dialback";
/// Stream feature announcing dialback support (XEP-0220 §2.4).
pub const FEATURE_NS: &str = "urn:xmpp:features:dialback";

pub struct Secret(String);

impl Secret {
    /// A fresh random secret (keys from an earlier run no longer verify,
    /// which only makes a peer dial back again).
    pub fn random() -> Secret {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Secret(hex(&bytes))
    }

    /// A secret shared by the nodes of a cluster (cluster/secrets.rs).
    pub fn from_bytes(bytes: &[u8; 32]) -> Secret {
        Secret(hex(bytes))
    }

    #[cfg(test)]
    fn from_text(s: &str) -> Secret {
        Secret(s.to_string())
    }

    /// The key for a stream from `originating` to `receiving` with `id`.
    pub fn key(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        let digest = hex(&Sha256::digest(self.0.as_bytes()));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(digest.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(receiving.as_bytes());
        mac.update(b" ");
        mac.update(originating.as_bytes());
        mac.update(b" ");
        mac.update(stream_id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `key` is ours for these names (constant time).
    pub fn verify(&self, receiving: &str, originating: &str, stream_id: &str, key: &str) -> bool {
        same_secret(&self.key(receiving, originating, stream_id), key.trim())
    }
}

/// Two secrets (keys, digests) compared in constant time.
pub(crate) fn same_secret(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xep_0185_example_key_is_reproduced() {
        // XEP-0185 §3: receiving xmpp.example.com, originating
        // example.org, the secret and stream id of its example.
        let secret = Secret::from_text("s3cr3tf0rd14lb4ck");
        let key = secret.key("xmpp.example.com", "example.org", "D60000229F");
        assert_eq!(
            key,
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
        let ok = |r: &str, o: &str, k: &str| secret.verify(r, o, "D60000229F", k);
        assert!(ok("xmpp.example.com", "example.org", &key));
        assert!(!ok("xmpp.example.com", "example.com", &key));
        assert!(!ok("xmpp.example.com", "example.org", "00"));
    }

    #[test]
    fn random_secrets_differ() {
        let a = Secret::random().key("a", "b", "c");
        let b = Secret::random().key("a", "b", "c");
        assert_ne!(a, b);
    }
}
