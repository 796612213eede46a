//! The HT-* hashed-token mechanisms (draft-schmaus-kitten-sasl-ht, as used
//! by XEP-0484 FAST), here HT-SHA-256-NONE: the client sends its
//! authentication id, a NUL and HMAC-SHA-256(token, "Initiator" || cb),
//! the server answers with HMAC-SHA-256(token, "Responder" || cb). With
//! `-NONE` the channel-binding data `cb` is empty; with `-ENDP` it is the
//! tls-server-end-point hash. One round trip.

use crate::credentials::Hash;
use crate::crypto::{ct_eq, hmac};
use crate::SaslError;

/// The mechanisms this crate verifies.
pub const HT_SHA_256_NONE: &str = "HT-SHA-256-NONE";
/// With `tls-server-end-point` channel binding.
pub const HT_SHA_256_ENDP: &str = "HT-SHA-256-ENDP";
/// With `tls-exporter` channel binding.
pub const HT_SHA_256_EXPR: &str = "HT-SHA-256-EXPR";

/// The client's message: who, and its proof.
pub struct HtInitial {
    pub authcid: String,
    proof: Vec<u8>,
}

pub fn parse_initial(data: &[u8]) -> Result<HtInitial, SaslError> {
    let nul = data
        .iter()
        .position(|b| *b == 0)
        .ok_or(SaslError::MalformedRequest)?;
    let authcid = std::str::from_utf8(&data[..nul])
        .map_err(|_| SaslError::MalformedRequest)?
        .to_string();
    let proof = data[nul + 1..].to_vec();
    if authcid.is_empty() || proof.len() != 32 {
        return Err(SaslError::MalformedRequest);
    }
    Ok(HtInitial { authcid, proof })
}

impl HtInitial {
    /// Whether the proof was made with `token` (constant time).
    pub fn proves(&self, token: &[u8], cb: &[u8]) -> bool {
        ct_eq(&initiator(token, cb), &self.proof)
    }
}

pub fn initiator(token: &[u8], cb: &[u8]) -> Vec<u8> {
    hmac(Hash::Sha256, token, &[b"Initiator".as_slice(), cb].concat())
}

/// The server's final message, proving it knows the token too.
pub fn responder(token: &[u8], cb: &[u8]) -> Vec<u8> {
    hmac(Hash::Sha256, token, &[b"Responder".as_slice(), cb].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_made_with_the_token_verifies_and_others_do_not() {
        let token = b"WXZzciBwYmFmdmZnZiBqdmd1IGp2eXFhcmZm";
        let mut msg = b"alice\0".to_vec();
        msg.extend(initiator(token, b""));
        let init = parse_initial(&msg).unwrap();
        assert_eq!(init.authcid, "alice");
        assert!(init.proves(token, b""));
        assert!(!init.proves(b"another token", b""));
        assert!(!init.proves(token, b"channel binding"));
        assert_ne!(responder(token, b""), initiator(token, b""));
        assert!(parse_initial(b"alice").is_err());
        assert!(parse_initial(b"\0xx").is_err());
    }
}
