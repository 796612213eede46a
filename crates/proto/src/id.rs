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

/// Digits of `archive_id`'s time part, in ASCII order so that fixed-width
/// numbers sort as text.
const SORTED_DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A stanza-id for an archived message (XEP-0359, XEP-0313): the current
/// millisecond in 8 sortable characters, then 10 random ones (59 bits).
/// Ids made later sort after earlier ones, so archives indexed by
/// (owner, id) insert at the end of each owner's range instead of at a
/// random page: a batch of rows then rewrites a few index pages instead
/// of one page per row. The time it gives away is in the message's
/// archive stamp anyway.
pub fn archive_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut id = time_digits(ms);
    id.push_str(&random_token(10));
    id
}

/// `ms` in 8 base-62 digits, most significant first (62^8 ms is about
/// 6,900 years).
fn time_digits(mut ms: u64) -> String {
    let mut digits = [b'0'; 8];
    for d in digits.iter_mut().rev() {
        *d = SORTED_DIGITS[(ms % 62) as usize];
        ms /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
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

    #[test]
    fn archive_ids_sort_by_time_as_text() {
        assert_eq!(time_digits(0), "00000000");
        assert_eq!(time_digits(61), "0000000z");
        assert_eq!(time_digits(62), "00000010");
        // Every pair of times, including across a digit carry.
        let times = [
            0u64,
            1,
            61,
            62,
            3843,
            3844,
            1_800_000_000_000,
            62u64.pow(8) - 1,
        ];
        for w in times.windows(2) {
            assert!(time_digits(w[0]) < time_digits(w[1]), "{w:?}");
        }
        let a = archive_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = archive_id();
        assert_eq!(a.len(), 18);
        assert!(a < b);
        assert!(b.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(archive_id(), archive_id());
    }
}
