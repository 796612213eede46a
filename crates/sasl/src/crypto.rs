//! SCRAM primitives of RFC 5802 §2.2: H, HMAC, Hi (PBKDF2) and a
//! constant-time comparison.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::credentials::Hash;

/// HMAC(key, data) with the given hash.
pub(crate) fn hmac(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; the
    // empty fallback only exists to avoid a panic path and would fail every
    // comparison made with it.
    match hash {
        Hash::Sha1 => Hmac::<Sha1>::new_from_slice(key)
            .map(|mut m| {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
        Hash::Sha256 => Hmac::<Sha256>::new_from_slice(key)
            .map(|mut m| {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
    }
}

/// H(data).
pub(crate) fn h(hash: Hash, data: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha1 => Sha1::digest(data).to_vec(),
        Hash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// Hi(password, salt, i) = PBKDF2 with HMAC-H, output length of H.
pub(crate) fn hi(hash: Hash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; hash.output_len()];
    match hash {
        Hash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
        Hash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
    }
    out
}

/// XOR of two equally long byte strings (ClientKey = ClientProof XOR ClientSignature).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Equality whose running time does not depend on where the inputs differ,
/// so proofs and keys cannot be guessed byte by byte. Lengths are public.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn output_lengths() {
        for hash in [Hash::Sha1, Hash::Sha256] {
            assert_eq!(h(hash, b"x").len(), hash.output_len());
            assert_eq!(hmac(hash, b"k", b"x").len(), hash.output_len());
            assert_eq!(hi(hash, b"p", b"s", 2).len(), hash.output_len());
        }
    }
}
