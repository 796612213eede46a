//! The PLAIN mechanism (RFC 4616): parsing the client's message and checking
//! the password against stored SCRAM keys.

use std::fmt;

use crate::credentials::{derive_with_salt, Hash, ScramKeys};
use crate::crypto;
use crate::error::SaslError;

/// A parsed PLAIN message. Debug output hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain {
    /// The authorization identity, if the client sent a non-empty one.
    pub authzid: Option<String>,
    /// The SASLprep'ed authentication identity.
    pub username: String,
    /// The SASLprep'ed password.
    pub password: String,
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plain")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses `[authzid] NUL authcid NUL passwd` (RFC 4616 §2): UTF-8, exactly
/// two NULs, non-empty authcid and password; authcid and password are
/// SASLprep'ed (RFC 4616 §2 and §5).
pub fn parse_plain(msg: &[u8]) -> Result<Plain, SaslError> {
    let s = std::str::from_utf8(msg).map_err(|_| SaslError::MalformedRequest)?;
    let mut parts = s.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::MalformedRequest);
    };
    let prep = |value: &str| -> Result<String, SaslError> {
        let prepped = stringprep::saslprep(value)
            .map_err(|_| SaslError::MalformedRequest)?
            .into_owned();
        // Checked after preparation: a value that maps to nothing is empty.
        if prepped.is_empty() {
            return Err(SaslError::MalformedRequest);
        }
        Ok(prepped)
    };
    Ok(Plain {
        authzid: (!authzid.is_empty()).then(|| authzid.to_owned()),
        username: prep(authcid)?,
        password: prep(password)?,
    })
}

/// Whether `password` matches the stored keys: derives StoredKey with the
/// stored salt and iteration count and compares it in constant time. The
/// password is SASLprep'ed (a no-op for output of `parse_plain`).
pub fn verify_password(keys: &ScramKeys, hash: Hash, password: &str) -> bool {
    let Ok(prepped) = stringprep::saslprep(password) else {
        return false;
    };
    let derived = derive_with_salt(&prepped, &keys.salt, keys.iterations, hash);
    crypto::ct_eq(&derived.stored_key, &keys.stored_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::derive;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn parses_plain() {
        let p = parse_plain(b"\0user\0pencil").unwrap();
        assert_eq!(p.authzid, None);
        assert_eq!(p.username, "user");
        assert_eq!(p.password, "pencil");

        let p = parse_plain(b"user@example.org\0user\0pen\0cil".as_slice());
        assert_eq!(p, Err(SaslError::MalformedRequest));

        let p = parse_plain(b"user@example.org\0user\0pencil").unwrap();
        assert_eq!(p.authzid.as_deref(), Some("user@example.org"));

        // SASLprep: U+00A0 maps to a space, U+00AD to nothing.
        let p = parse_plain("\0us\u{00AD}er\0pen\u{00A0}cil".as_bytes()).unwrap();
        assert_eq!(p.username, "user");
        assert_eq!(p.password, "pen cil");
        assert!(!format!("{p:?}").contains("pen cil"));
    }

    #[test]
    fn rejects_malformed_plain() {
        let cases: &[&[u8]] = &[
            b"",
            b"user",
            b"\0user",
            b"\0user\0",
            b"\0\0pencil",
            b"a\0\0pencil",
            b"\0user\0pencil\0",
            b"\0us\xffer\0pencil",
            b"\0user\0pen\x07cil",
            "\0\u{00AD}\0pencil".as_bytes(),
        ];
        for case in cases {
            assert_eq!(
                parse_plain(case),
                Err(SaslError::MalformedRequest),
                "{case:?}"
            );
        }
    }

    #[test]
    fn verifies_password() {
        let creds = derive("pencil", 64).unwrap();
        for hash in [Hash::Sha1, Hash::Sha256] {
            let keys = creds.keys(hash);
            assert!(verify_password(keys, hash, "pencil"));
            // Unnormalized forms of the same password match too.
            assert!(verify_password(keys, hash, "pen\u{00AD}cil"));
            assert!(!verify_password(keys, hash, "pencil "));
            assert!(!verify_password(keys, hash, ""));
            assert!(!verify_password(keys, hash, "pen\u{0007}cil"));
        }
        // Keys of the other hash never match.
        assert!(!verify_password(&creds.sha1, Hash::Sha256, "pencil"));
    }

    #[test]
    fn parse_then_verify() {
        let creds = derive("pen cil", 16).unwrap();
        let p = parse_plain("\0user\0pen\u{00A0}cil".as_bytes()).unwrap();
        assert!(verify_password(&creds.sha256, Hash::Sha256, &p.password));
    }

    #[test]
    fn fuzz_never_panics() {
        let mut rng = StdRng::seed_from_u64(7);
        let alphabet = b"\0\0ab\xc2\xa0\xff\x07 ";
        for i in 0..500 {
            let len = rng.random_range(0..32);
            let msg: Vec<u8> = if i % 2 == 0 {
                (0..len).map(|_| rng.random()).collect()
            } else {
                (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect()
            };
            let _ = parse_plain(&msg);
        }
    }
}
