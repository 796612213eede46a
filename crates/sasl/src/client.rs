//! Client side of SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677),
//! without channel binding; for the project's test client and load generator.

use base64::prelude::*;

use crate::credentials::Hash;
use crate::crypto;
use crate::error::SaslError;
use crate::scram::{
    as_text, check_extension, encode_saslname, is_valid_nonce, random_nonce, NONCE_LEN,
};

enum State {
    Initial,
    SentFirst {
        gs2_header: String,
        client_first_bare: String,
    },
    SentFinal {
        server_signature: Vec<u8>,
    },
    Done,
    Failed,
}

/// One SCRAM exchange on the client side: `client_first`, then
/// `handle_server_first`, then `verify_server_final`.
pub struct ScramClient {
    hash: Hash,
    username: String,
    password: String,
    authzid: Option<String>,
    client_nonce: String,
    state: State,
    /// SaltedPassword from an earlier exchange, or the one computed in
    /// this exchange: clients may keep it instead of the password and
    /// skip the expensive Hi() next time (RFC 5802 §5.1).
    salted: Option<SaltedPassword>,
    /// A -PLUS mechanism: the channel-binding type and its data.
    binding: Option<(String, Vec<u8>)>,
    /// Say 'y' (could bind, but the server seemed not to offer it).
    says_y: bool,
    /// XEP-0474: the mechanisms and types we saw advertised; the server's
    /// `h=` must be their hash.
    ssdp: Option<String>,
}

/// Hi(password, salt, i) together with the parameters it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaltedPassword {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub key: Vec<u8>,
}

impl ScramClient {
    pub fn new(hash: Hash, username: &str, password: &str) -> Self {
        ScramClient {
            hash,
            username: username.to_owned(),
            password: password.to_owned(),
            authzid: None,
            client_nonce: random_nonce(NONCE_LEN),
            state: State::Initial,
            salted: None,
            binding: None,
            says_y: false,
            ssdp: None,
        }
    }

    /// Bind to the TLS channel (a -PLUS mechanism): `kind` such as
    /// `tls-server-end-point`, and its data.
    pub fn with_channel_binding(mut self, kind: &str, data: Vec<u8>) -> Self {
        self.binding = Some((kind.to_owned(), data));
        self
    }

    /// Send the 'y' flag: we could bind but saw no -PLUS offered.
    pub fn saying_y(mut self) -> Self {
        self.says_y = true;
        self
    }

    /// Check the server's XEP-0474 hash against what we saw advertised.
    pub fn expecting_ssdp(mut self, mechanisms: &[&str], cb_types: Option<&[&str]>) -> Self {
        self.ssdp = Some(crate::scram::ssdp_string(mechanisms, cb_types));
        self
    }

    /// Reuse a SaltedPassword kept from an earlier exchange with the same
    /// password; it is used only if the server offers the same salt and
    /// iteration count, so a changed password still works.
    pub fn with_salted_password(mut self, salted: SaltedPassword) -> Self {
        self.salted = Some(salted);
        self
    }

    /// The SaltedPassword of this exchange, once the server's first
    /// message was handled; worth keeping only after success.
    pub fn salted_password(&self) -> Option<&SaltedPassword> {
        self.salted.as_ref()
    }

    /// Asks to act as `authzid` (sent as `a=` in the gs2 header).
    pub fn with_authzid(mut self, authzid: &str) -> Self {
        self.authzid = Some(authzid.to_owned());
        self
    }

    /// Fixes the client nonce, to replay the RFC examples.
    #[cfg(test)]
    pub(crate) fn with_nonce(mut self, nonce: &str) -> Self {
        self.client_nonce = nonce.to_owned();
        self
    }

    /// The client-first-message (gs2 flag `n`, `y`, or `p=` with binding).
    pub fn client_first(&mut self) -> Vec<u8> {
        // A username SASLprep rejects is sent as is; the server refuses it.
        let username = stringprep::saslprep(&self.username)
            .map(|u| u.into_owned())
            .unwrap_or_else(|_| self.username.clone());
        let flag = match (&self.binding, self.says_y) {
            (Some((kind, _)), _) => format!("p={kind}"),
            (None, true) => "y".to_owned(),
            (None, false) => "n".to_owned(),
        };
        let gs2_header = match &self.authzid {
            Some(authzid) => format!("{flag},a={},", encode_saslname(authzid)),
            None => format!("{flag},,"),
        };
        let client_first_bare = format!("n={},r={}", encode_saslname(&username), self.client_nonce);
        let msg = format!("{gs2_header}{client_first_bare}").into_bytes();
        self.state = State::SentFirst {
            gs2_header,
            client_first_bare,
        };
        msg
    }

    /// Answers server-first-message with client-final-message.
    pub fn handle_server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslError> {
        let State::SentFirst {
            gs2_header,
            client_first_bare,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(SaslError::MalformedRequest);
        };
        let server_first = as_text(msg)?;
        if server_first.starts_with("e=") {
            return Err(SaslError::NotAuthorized);
        }
        let mut attrs = server_first.split(',');
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(SaslError::MalformedRequest)?;
        // The server must extend our nonce, not replace it.
        if !is_valid_nonce(nonce)
            || nonce.len() <= self.client_nonce.len()
            || !nonce.starts_with(&self.client_nonce)
        {
            return Err(SaslError::MalformedRequest);
        }
        let salt = attrs
            .next()
            .and_then(|a| a.strip_prefix("s="))
            .ok_or(SaslError::MalformedRequest)?;
        let salt = BASE64_STANDARD
            .decode(salt)
            .map_err(|_| SaslError::IncorrectEncoding)?;
        let iterations: u32 = attrs
            .next()
            .and_then(|a| a.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .filter(|&i| i > 0)
            .ok_or(SaslError::MalformedRequest)?;
        let mut server_hash = None;
        for a in attrs {
            match a.strip_prefix("h=") {
                Some(h) => server_hash = Some(h.to_owned()),
                None => check_extension(a)?,
            }
        }
        if let Some(expected) = &self.ssdp {
            let ours = BASE64_STANDARD.encode(crypto::h(self.hash, expected.as_bytes()));
            // XEP-0474 §4.2: a different list means someone changed it.
            if server_hash.as_deref() != Some(ours.as_str()) {
                return Err(SaslError::NotAuthorized);
            }
        }

        let password =
            stringprep::saslprep(&self.password).map_err(|_| SaslError::MalformedRequest)?;
        let reuse = self
            .salted
            .take()
            .filter(|k| k.salt == salt && k.iterations == iterations);
        let salted = match reuse {
            Some(known) => known.key,
            None => crypto::hi(self.hash, password.as_bytes(), &salt, iterations),
        };
        self.salted = Some(SaltedPassword {
            salt: salt.clone(),
            iterations,
            key: salted.clone(),
        });
        let client_key = crypto::hmac(self.hash, &salted, b"Client Key");
        let stored_key = crypto::h(self.hash, &client_key);
        let mut cbind = gs2_header.clone().into_bytes();
        if let Some((_, data)) = &self.binding {
            cbind.extend_from_slice(data);
        }
        let without_proof = format!("c={},r={nonce}", BASE64_STANDARD.encode(&cbind));
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = crypto::hmac(self.hash, &stored_key, auth_message.as_bytes());
        let proof = crypto::xor(&client_key, &client_signature);
        let server_key = crypto::hmac(self.hash, &salted, b"Server Key");
        let server_signature = crypto::hmac(self.hash, &server_key, auth_message.as_bytes());

        self.state = State::SentFinal { server_signature };
        Ok(format!("{without_proof},p={}", BASE64_STANDARD.encode(proof)).into_bytes())
    }

    /// Checks the server's signature in server-final-message, which proves
    /// the server knew our keys (mutual authentication).
    pub fn verify_server_final(&mut self, msg: &[u8]) -> Result<(), SaslError> {
        let State::SentFinal { server_signature } =
            std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(SaslError::MalformedRequest);
        };
        let s = as_text(msg)?;
        let mut attrs = s.split(',');
        let first = attrs.next().unwrap_or_default();
        if first.starts_with("e=") {
            return Err(SaslError::NotAuthorized);
        }
        let verifier = first
            .strip_prefix("v=")
            .ok_or(SaslError::MalformedRequest)?;
        attrs.try_for_each(check_extension)?;
        let verifier = BASE64_STANDARD
            .decode(verifier)
            .map_err(|_| SaslError::IncorrectEncoding)?;
        if !crypto::ct_eq(&verifier, &server_signature) {
            return Err(SaslError::NotAuthorized);
        }
        self.state = State::Done;
        Ok(())
    }

    /// True once the server's signature was verified.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn rfc5802_example() {
        let mut client =
            ScramClient::new(Hash::Sha1, "user", "pencil").with_nonce("fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(
            client.client_first(),
            b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
        );
        let client_final = client
            .handle_server_first(
                b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            )
            .unwrap();
        assert_eq!(
            client_final,
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        client
            .verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
            .unwrap();
        assert!(client.is_done());
    }

    #[test]
    fn a_kept_salted_password_is_reused_only_for_the_same_salt_and_count() {
        const NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
        const FIRST: &[u8] =
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        const FINAL: &[u8] =
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        let run = |kept: Option<SaltedPassword>| {
            let mut c = ScramClient::new(Hash::Sha1, "user", "pencil").with_nonce(NONCE);
            if let Some(k) = kept {
                c = c.with_salted_password(k);
            }
            c.client_first();
            let fin = c.handle_server_first(FIRST).unwrap();
            (fin, c.salted_password().cloned().unwrap())
        };
        let (fin, kept) = run(None);
        assert_eq!(fin, FINAL);
        assert_eq!(kept.iterations, 4096);
        // Reused as is: the same answer.
        assert_eq!(run(Some(kept.clone())).0, FINAL);
        // Another salt or count: computed again, still right.
        let other_salt = SaltedPassword {
            salt: b"other".to_vec(),
            key: vec![0; 20],
            ..kept.clone()
        };
        assert_eq!(run(Some(other_salt)).0, FINAL);
        let other_count = SaltedPassword {
            iterations: 4095,
            key: vec![0; 20],
            ..kept.clone()
        };
        assert_eq!(run(Some(other_count)).0, FINAL);
        // Proof that the kept key really is what is used.
        let wrong_key = SaltedPassword {
            key: vec![0; 20],
            ..kept
        };
        assert_ne!(run(Some(wrong_key)).0, FINAL);
    }

    #[test]
    fn rfc7677_example() {
        let mut client =
            ScramClient::new(Hash::Sha256, "user", "pencil").with_nonce("rOprNGfwEbeRWgbNEkqO");
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let client_final = client
            .handle_server_first(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            client_final,
            &b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
               p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="[..]
        );
        client
            .verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn bad_server_signature_is_rejected() {
        let mut client =
            ScramClient::new(Hash::Sha1, "user", "pencil").with_nonce("fyko+d2lbbFgONRv9qkxdawL");
        client.client_first();
        client
            .handle_server_first(
                b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            )
            .unwrap();
        assert_eq!(
            client.verify_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(SaslError::NotAuthorized)
        );
        assert!(!client.is_done());
    }

    #[test]
    fn bad_server_first_is_rejected() {
        let cases: &[(&[u8], SaslError)] = &[
            (b"", SaslError::MalformedRequest),
            (b"e=other-error", SaslError::NotAuthorized),
            // Nonce not extended, or replaced.
            (b"r=abc,s=QSXCR+Q6sek8bf92,i=1", SaslError::MalformedRequest),
            (
                b"r=xyzS,s=QSXCR+Q6sek8bf92,i=1",
                SaslError::MalformedRequest,
            ),
            (b"r=abcS,s=!!,i=1", SaslError::IncorrectEncoding),
            (
                b"r=abcS,s=QSXCR+Q6sek8bf92,i=0",
                SaslError::MalformedRequest,
            ),
            (
                b"r=abcS,s=QSXCR+Q6sek8bf92,i=-1",
                SaslError::MalformedRequest,
            ),
            (b"r=abcS,s=QSXCR+Q6sek8bf92", SaslError::MalformedRequest),
            (
                b"m=x,r=abcS,s=QSXCR+Q6sek8bf92,i=1",
                SaslError::MalformedRequest,
            ),
            (
                b"r=abcS,s=QSXCR+Q6sek8bf92,i=1,m=x",
                SaslError::MalformedRequest,
            ),
        ];
        for (msg, expected) in cases {
            let mut client = ScramClient::new(Hash::Sha1, "user", "pencil").with_nonce("abc");
            client.client_first();
            assert_eq!(client.handle_server_first(msg), Err(*expected), "{msg:?}");
        }
    }

    #[test]
    fn steps_out_of_order() {
        let mut client = ScramClient::new(Hash::Sha256, "user", "pencil");
        assert_eq!(
            client.handle_server_first(b"r=x,s=AAAA,i=1"),
            Err(SaslError::MalformedRequest)
        );
        let mut client = ScramClient::new(Hash::Sha256, "user", "pencil");
        client.client_first();
        assert_eq!(
            client.verify_server_final(b"v=AAAA"),
            Err(SaslError::MalformedRequest)
        );
    }

    #[test]
    fn authzid_in_gs2_header() {
        let mut client = ScramClient::new(Hash::Sha1, "u", "p")
            .with_authzid("a,b=c")
            .with_nonce("N");
        assert_eq!(client.client_first(), b"n,a=a=2Cb=3Dc,n=u,r=N");
    }

    /// Random bytes as server messages must never panic. (Mutations of a
    /// valid server-first are left out: they could ask for huge iteration
    /// counts, which is slow, not unsafe.)
    #[test]
    fn fuzz_never_panics() {
        let mut rng = StdRng::seed_from_u64(42);
        for _ in 0..300 {
            let len = rng.random_range(0..64);
            let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let mut client = ScramClient::new(Hash::Sha1, "user", "pencil");
            client.client_first();
            let _ = client.handle_server_first(&junk);

            let mut client = ScramClient::new(Hash::Sha1, "user", "pencil").with_nonce("n");
            client.client_first();
            client
                .handle_server_first(b"r=nS,s=QSXCR+Q6sek8bf92,i=1")
                .unwrap();
            let _ = client.verify_server_final(&junk);
        }
    }
}
