//! Stored SCRAM credentials (RFC 5802 §3) and their derivation from a password.

use rand::RngCore;

use crate::crypto;
use crate::error::SaslError;

/// Iteration count for newly derived credentials: the minimum RFC 7677 §4
/// recommends, and what the RFC test vectors use.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Length of the random salt generated per hash.
const SALT_LEN: usize = 16;

/// Hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    /// SCRAM-SHA-1 (RFC 5802).
    Sha1,
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
}

impl Hash {
    /// The SASL mechanism name using this hash.
    pub fn mechanism(self) -> &'static str {
        match self {
            Hash::Sha1 => "SCRAM-SHA-1",
            Hash::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// The hash of a SCRAM mechanism name (not of -PLUS variants, which we
    /// do not offer).
    pub fn from_mechanism(name: &str) -> Option<Hash> {
        match name {
            "SCRAM-SHA-1" => Some(Hash::Sha1),
            "SCRAM-SHA-256" => Some(Hash::Sha256),
            _ => None,
        }
    }

    /// Output length of the hash in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }
}

/// SCRAM server-side keys for one hash (RFC 5802 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Credentials of an account: keys for SCRAM-SHA-1 and SCRAM-SHA-256.
/// PLAIN is verified by deriving the keys from the given password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    pub sha1: ScramKeys,
    pub sha256: ScramKeys,
}

impl StoredCredentials {
    /// The keys for one hash.
    pub fn keys(&self, hash: Hash) -> &ScramKeys {
        match hash {
            Hash::Sha1 => &self.sha1,
            Hash::Sha256 => &self.sha256,
        }
    }
}

/// Derives credentials for both hashes, each with its own random salt.
/// The password is SASLprep'ed first (RFC 5802 §2.2 Normalize); a password
/// SASLprep rejects, or zero iterations, gives `MalformedRequest`.
pub fn derive(password: &str, iterations: u32) -> Result<StoredCredentials, SaslError> {
    if iterations == 0 {
        return Err(SaslError::MalformedRequest);
    }
    let prepped = stringprep::saslprep(password).map_err(|_| SaslError::MalformedRequest)?;
    let mut rng = rand::rng();
    let mut derive_one = |hash| {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        derive_with_salt(&prepped, &salt, iterations, hash)
    };
    Ok(StoredCredentials {
        sha1: derive_one(Hash::Sha1),
        sha256: derive_one(Hash::Sha256),
    })
}

/// Derives the keys for one hash from a password that is already
/// normalized (SASLprep'ed) and a given salt:
/// SaltedPassword = Hi(password, salt, i), ClientKey = HMAC(SaltedPassword,
/// "Client Key"), StoredKey = H(ClientKey), ServerKey = HMAC(SaltedPassword,
/// "Server Key").
pub fn derive_with_salt(password: &str, salt: &[u8], iterations: u32, hash: Hash) -> ScramKeys {
    let salted = crypto::hi(hash, password.as_bytes(), salt, iterations);
    let client_key = crypto::hmac(hash, &salted, b"Client Key");
    ScramKeys {
        salt: salt.to_vec(),
        iterations,
        stored_key: crypto::h(hash, &client_key),
        server_key: crypto::hmac(hash, &salted, b"Server Key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::prelude::*;

    #[test]
    fn derive_uses_fresh_salts() {
        let a = derive("pencil", 2).unwrap();
        let b = derive("pencil", 2).unwrap();
        assert_eq!(a.sha1.salt.len(), SALT_LEN);
        assert_eq!(a.sha256.salt.len(), SALT_LEN);
        assert_ne!(a.sha1.salt, a.sha256.salt);
        assert_ne!(a.sha1.salt, b.sha1.salt);
        assert_ne!(a.sha1.stored_key, b.sha1.stored_key);
        assert_eq!(a.sha1.stored_key.len(), 20);
        assert_eq!(a.sha256.server_key.len(), 32);
        assert_eq!(a.keys(Hash::Sha1), &a.sha1);
        assert_eq!(a.keys(Hash::Sha256).iterations, 2);
    }

    #[test]
    fn derive_matches_derive_with_salt_after_saslprep() {
        // U+00AD (soft hyphen) is mapped to nothing by SASLprep.
        let creds = derive("pen\u{00AD}cil", 3).unwrap();
        let again = derive_with_salt("pencil", &creds.sha256.salt, 3, Hash::Sha256);
        assert_eq!(creds.sha256, again);
    }

    #[test]
    fn derive_rejects_bad_input() {
        assert_eq!(derive("pencil", 0), Err(SaslError::MalformedRequest));
        // Prohibited control character.
        assert_eq!(
            derive("pen\u{0007}cil", 1),
            Err(SaslError::MalformedRequest)
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc_example_keys() {
        // Expected values computed independently (Python hashlib/hmac) from
        // the password and salts of the RFC 5802 §5 and RFC 7677 §3 examples.
        let salt = BASE64_STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
        let keys = derive_with_salt("pencil", &salt, 4096, Hash::Sha1);
        assert_eq!(
            hex(&keys.stored_key),
            "e9d94660c39d65c38fbad91c358f14da0eef2bd6"
        );
        assert_eq!(
            hex(&keys.server_key),
            "0fe09258b3ac852ba502cc62ba903eaacdbf7d31"
        );
        assert_eq!(keys.salt, salt);
        assert_eq!(keys.iterations, 4096);

        let salt = BASE64_STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = derive_with_salt("pencil", &salt, 4096, Hash::Sha256);
        assert_eq!(
            hex(&keys.stored_key),
            "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6"
        );
        assert_eq!(
            hex(&keys.server_key),
            "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5"
        );
    }

    #[test]
    fn mechanism_names() {
        for hash in [Hash::Sha1, Hash::Sha256] {
            assert_eq!(Hash::from_mechanism(hash.mechanism()), Some(hash));
        }
        assert_eq!(Hash::from_mechanism("SCRAM-SHA-1-PLUS"), None);
        assert_eq!(Hash::from_mechanism("PLAIN"), None);
    }
}
