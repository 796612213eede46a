//! Identifiers the server makes up: stream ids, resources, stanza ids.
//! Random enough to be unguessable, short enough to be cheap.

use rand::{distr::Alphanumeric, Rng};

/// A fresh random token of `len` ASCII letters and digits.
pub fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A stream id (RFC 6120 §4.7.3): unique and unpredictable.
pub fn stream_id() -> String {
    random_token(16)
}

/// A server-generated resource part (RFC 6120 §7.6.2.1).
pub fn resource() -> String {
    format!("roost-{}", random_token(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_requested_length_and_differ() {
        let a = random_token(12);
        let b = random_token(12);
        assert_eq!(a.len(), 12);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
