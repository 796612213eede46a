//! Server side of SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) and
//! their -PLUS variants with channel binding (RFC 5929 `tls-server-end-point`,
//! XEP-0440), with the XEP-0474 downgrade protection hash (`h=`).

use std::sync::OnceLock;

use base64::prelude::*;
use rand::{Rng, RngCore};

use crate::credentials::{Hash, ScramKeys, DEFAULT_ITERATIONS};
use crate::crypto;
use crate::error::SaslError;

/// Length of the random part each side adds to the nonce.
pub(crate) const NONCE_LEN: usize = 24;

/// Length of the fake salt sent for unknown users; matches the salts
/// `credentials::derive` generates so the two cannot be told apart.
const FAKE_SALT_LEN: usize = 16;

/// What the client-first-message told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The SASLprep'ed authentication identity (`n=`).
    pub username: String,
    /// The authorization identity (`a=`), if any; the caller must check it
    /// is absent or equal to the user's bare JID.
    pub authzid: Option<String>,
}

enum State {
    Initial,
    GotClientFirst {
        gs2_header: String,
        client_first_bare: String,
        client_nonce: String,
    },
    SentServerFirst {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        /// False for an unknown user: the exchange runs to the end on dummy
        /// keys and then fails, so it looks like a wrong password.
        known: bool,
    },
    Done,
    Failed,
}

/// One SCRAM authentication exchange on the server side.
///
/// Steps: [`client_first`](Self::client_first), then the caller looks the
/// user up and calls [`server_first`](Self::server_first), then
/// [`client_final`](Self::client_final). Any error ends the exchange: every
/// later call fails with `MalformedRequest`.
pub struct ScramServer {
    hash: Hash,
    state: State,
    username: Option<String>,
    authzid: Option<String>,
    /// Replaces the random server nonce part; only set by tests so the RFC
    /// vectors can be replayed.
    fixed_nonce_suffix: Option<String>,
    binding: Binding,
    /// The data of the type the client bound to (-PLUS).
    bound_to: Option<Vec<u8>>,
    /// XEP-0474: the advertised mechanisms and channel-binding types, as
    /// the string whose hash goes into server-first-message (`h=`).
    ssdp: Option<String>,
}

/// Channel binding (RFC 5802 §6): what this exchange requires or refuses.
#[derive(Debug, Clone, Default)]
pub struct Binding {
    /// The types (and their data) the server offered on this connection;
    /// with any, a client saying it could bind but thought we could not
    /// ('y') was downgraded.
    pub offered: Vec<(String, Vec<u8>)>,
    /// A -PLUS mechanism: the client must bind to one of `offered`.
    pub plus: bool,
}

impl ScramServer {
    pub fn new(hash: Hash) -> Self {
        ScramServer {
            hash,
            state: State::Initial,
            username: None,
            authzid: None,
            fixed_nonce_suffix: None,
            binding: Binding::default(),
            bound_to: None,
            ssdp: None,
        }
    }

    /// With channel binding as `binding` says (RFC 5802 §6, XEP-0440).
    pub fn with_binding(mut self, binding: Binding) -> Self {
        self.binding = binding;
        self
    }

    /// With the XEP-0474 hash over these advertised mechanisms and
    /// channel-binding types (`None`: XEP-0440 was not used).
    pub fn with_downgrade_protection(
        mut self,
        mechanisms: &[&str],
        cb_types: Option<&[&str]>,
    ) -> Self {
        self.ssdp = Some(ssdp_string(mechanisms, cb_types));
        self
    }

    /// A server whose nonce part is fixed, to replay the RFC examples.
    #[cfg(test)]
    pub(crate) fn with_nonce_suffix(hash: Hash, suffix: &str) -> Self {
        let mut server = ScramServer::new(hash);
        server.fixed_nonce_suffix = Some(suffix.to_owned());
        server
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The SASLprep'ed username, once the client-first-message is parsed.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The authorization identity of the client-first-message, if any.
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    /// True once the client's proof was verified.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Ends the exchange; a finished success stays a success so that a
    /// stray extra message cannot flip `is_authenticated`.
    fn fail(&mut self, err: SaslError) -> SaslError {
        if !matches!(self.state, State::Done) {
            self.state = State::Failed;
        }
        err
    }

    /// Parse client-first-message; returns the SASLprep'ed username (authcid).
    /// The gs2 flag must fit the channel binding set with `with_binding`.
    pub fn client_first(&mut self, msg: &[u8]) -> Result<ClientFirst, SaslError> {
        if !matches!(self.state, State::Initial) {
            return Err(self.fail(SaslError::MalformedRequest));
        }
        let parsed = match parse_client_first(msg) {
            Ok(parsed) => parsed,
            Err(err) => return Err(self.fail(err)),
        };
        if let Err(err) = self.check_flag(&parsed.cb_flag) {
            return Err(self.fail(err));
        }
        self.username = Some(parsed.username.clone());
        self.authzid = parsed.authzid.clone();
        self.state = State::GotClientFirst {
            gs2_header: parsed.gs2_header,
            client_first_bare: parsed.client_first_bare,
            client_nonce: parsed.client_nonce,
        };
        Ok(ClientFirst {
            username: parsed.username,
            authzid: parsed.authzid,
        })
    }

    /// RFC 5802 §6: a -PLUS mechanism needs `p=` with our type; otherwise
    /// `n`, or `y` only when we did not offer binding (else a downgrade).
    fn check_flag(&mut self, flag: &str) -> Result<(), SaslError> {
        if self.binding.plus {
            let kind = flag.strip_prefix("p=").ok_or(SaslError::NotAuthorized)?;
            let data = self
                .binding
                .offered
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, d)| d.clone())
                .ok_or(SaslError::NotAuthorized)?;
            self.bound_to = Some(data);
            return Ok(());
        }
        match flag {
            "n" => Ok(()),
            "y" if self.binding.offered.is_empty() => Ok(()),
            "y" => Err(SaslError::NotAuthorized),
            _ => Err(SaslError::MalformedRequest),
        }
    }

    /// Build server-first-message from the user's keys. With `None` (unknown
    /// user) the answer uses a salt derived from the username with a
    /// per-process secret, so it is stable across attempts, and
    /// [`DEFAULT_ITERATIONS`], so unknown users look like known ones; the
    /// exchange then fails at the final step.
    ///
    /// Called out of order it returns an empty message and ends the exchange.
    pub fn server_first(&mut self, keys: Option<&ScramKeys>) -> Vec<u8> {
        if !matches!(self.state, State::GotClientFirst { .. }) {
            self.fail(SaslError::MalformedRequest);
            return Vec::new();
        }
        let State::GotClientFirst {
            gs2_header,
            client_first_bare,
            client_nonce,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return Vec::new();
        };
        let suffix = match &self.fixed_nonce_suffix {
            Some(suffix) => suffix.clone(),
            None => random_nonce(NONCE_LEN),
        };
        let nonce = format!("{client_nonce}{suffix}");
        let (salt, iterations, stored_key, server_key, known) = match keys {
            Some(keys) => (
                keys.salt.clone(),
                keys.iterations,
                keys.stored_key.clone(),
                keys.server_key.clone(),
                true,
            ),
            None => {
                let username = self.username.as_deref().unwrap_or_default();
                let len = self.hash.output_len();
                (
                    fake_salt(self.hash, username),
                    DEFAULT_ITERATIONS,
                    vec![0; len],
                    vec![0; len],
                    false,
                )
            }
        };
        let mut server_first = format!(
            "r={nonce},s={},i={iterations}",
            BASE64_STANDARD.encode(&salt)
        );
        if let Some(s) = &self.ssdp {
            let h = crypto::h(self.hash, s.as_bytes());
            server_first.push_str(&format!(",h={}", BASE64_STANDARD.encode(h)));
        }
        let out = server_first.clone().into_bytes();
        self.state = State::SentServerFirst {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
            stored_key,
            server_key,
            known,
        };
        out
    }

    /// Verify client-final-message: the channel-binding echo must match the
    /// gs2 header, the nonce must be ours, and the proof is checked in
    /// constant time. On success returns server-final-message (`v=...`).
    pub fn client_final(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, State::SentServerFirst { .. }) {
            return Err(self.fail(SaslError::MalformedRequest));
        }
        let State::SentServerFirst {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
            stored_key,
            server_key,
            known,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(SaslError::MalformedRequest);
        };
        // The state stays `Failed` unless everything below succeeds.
        let s = as_text(msg)?;
        let (without_proof, proof_attr) = s.rsplit_once(',').ok_or(SaslError::MalformedRequest)?;
        let proof_b64 = proof_attr
            .strip_prefix("p=")
            .ok_or(SaslError::MalformedRequest)?;
        let mut attrs = without_proof.split(',');
        let cbind_b64 = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(SaslError::MalformedRequest)?;
        let final_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(SaslError::MalformedRequest)?;
        attrs.try_for_each(check_extension)?;

        let cbind = BASE64_STANDARD
            .decode(cbind_b64)
            .map_err(|_| SaslError::IncorrectEncoding)?;
        let proof = BASE64_STANDARD
            .decode(proof_b64)
            .map_err(|_| SaslError::IncorrectEncoding)?;

        // Without channel binding the echo is exactly the gs2 header; a
        // different one means the header was tampered with (e.g. a 'y'
        // downgrade rewritten to 'n').
        let mut expected = gs2_header.clone().into_bytes();
        if let Some(data) = &self.bound_to {
            expected.extend_from_slice(data);
        }
        if !crypto::ct_eq(&cbind, &expected) || final_nonce != nonce {
            return Err(SaslError::NotAuthorized);
        }

        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = crypto::hmac(self.hash, &stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(SaslError::NotAuthorized);
        }
        let client_key = crypto::xor(&proof, &client_signature);
        let proof_ok = crypto::ct_eq(&crypto::h(self.hash, &client_key), &stored_key);
        if !(proof_ok && known) {
            return Err(SaslError::NotAuthorized);
        }
        let server_signature = crypto::hmac(self.hash, &server_key, auth_message.as_bytes());
        self.state = State::Done;
        Ok(format!("v={}", BASE64_STANDARD.encode(server_signature)).into_bytes())
    }
}

/// XEP-0474 §4.1: sorted mechanisms joined by 0x1E, then 0x1F and the
/// sorted channel-binding types joined by 0x1E when XEP-0440 was used.
pub fn ssdp_string(mechanisms: &[&str], cb_types: Option<&[&str]>) -> String {
    let mut m: Vec<&str> = mechanisms.to_vec();
    m.sort_unstable();
    let mut s = m.join("\u{1e}");
    if let Some(types) = cb_types {
        let mut t: Vec<&str> = types.to_vec();
        t.sort_unstable();
        s.push('\u{1f}');
        s.push_str(&t.join("\u{1e}"));
    }
    s
}

struct ParsedClientFirst {
    cb_flag: String,
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
    username: String,
    authzid: Option<String>,
}

fn parse_client_first(msg: &[u8]) -> Result<ParsedClientFirst, SaslError> {
    let s = as_text(msg)?;
    let (cbind_flag, rest) = s.split_once(',').ok_or(SaslError::MalformedRequest)?;
    let flag_ok = matches!(cbind_flag, "n" | "y")
        || cbind_flag
            .strip_prefix("p=")
            .is_some_and(|name| !name.is_empty());
    if !flag_ok {
        return Err(SaslError::MalformedRequest);
    }
    let (authz_attr, bare) = rest.split_once(',').ok_or(SaslError::MalformedRequest)?;
    let authzid = if authz_attr.is_empty() {
        None
    } else {
        let raw = authz_attr
            .strip_prefix("a=")
            .ok_or(SaslError::MalformedRequest)?;
        let authzid = decode_saslname(raw)?;
        if authzid.is_empty() {
            return Err(SaslError::MalformedRequest);
        }
        Some(authzid)
    };
    let gs2_header = s[..s.len() - bare.len()].to_owned();

    let mut attrs = bare.split(',');
    // A leading "m=" is a mandatory extension we do not know: must fail.
    let username = attrs
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or(SaslError::MalformedRequest)?;
    let username = decode_saslname(username)?;
    let username = stringprep::saslprep(&username)
        .map_err(|_| SaslError::MalformedRequest)?
        .into_owned();
    if username.is_empty() {
        return Err(SaslError::MalformedRequest);
    }
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(SaslError::MalformedRequest)?;
    if !is_valid_nonce(client_nonce) {
        return Err(SaslError::MalformedRequest);
    }
    attrs.try_for_each(check_extension)?;

    Ok(ParsedClientFirst {
        cb_flag: cbind_flag.to_owned(),
        gs2_header,
        client_first_bare: bare.to_owned(),
        client_nonce: client_nonce.to_owned(),
        username,
        authzid,
    })
}

/// The message as UTF-8 without NUL (RFC 5802 §7 excludes NUL everywhere).
pub(crate) fn as_text(msg: &[u8]) -> Result<&str, SaslError> {
    let s = std::str::from_utf8(msg).map_err(|_| SaslError::MalformedRequest)?;
    if s.contains('\0') {
        return Err(SaslError::MalformedRequest);
    }
    Ok(s)
}

/// Accepts an optional extension `ALPHA "=" 1*value-char`; "m=" marks a
/// mandatory extension, which RFC 5802 §5.1 says must make us fail.
pub(crate) fn check_extension(attr: &str) -> Result<(), SaslError> {
    let bytes = attr.as_bytes();
    if bytes.len() < 3 || !bytes[0].is_ascii_alphabetic() || bytes[1] != b'=' || bytes[0] == b'm' {
        return Err(SaslError::MalformedRequest);
    }
    Ok(())
}

/// `printable = %x21-2B / %x2D-7E`, at least one character.
pub(crate) fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// The characters our nonces are drawn from: letters, digits, '+' and '/'.
/// RFC 5802 allows any printable character but ','; clients in the wild
/// (xmpp.js among them) split the server-first-message on '=' or choke on
/// '"', so we send only what every parser accepts, as Prosody and ejabberd do.
const NONCE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `len` random characters of [`NONCE_ALPHABET`] (6 bits of entropy each).
pub(crate) fn random_nonce(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(NONCE_ALPHABET[rng.random_range(0..NONCE_ALPHABET.len())]))
        .collect()
}

/// Decodes a saslname: "=2C" is ',' and "=3D" is '='; any other '=' is
/// malformed (RFC 5802 §5.1).
pub(crate) fn decode_saslname(raw: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let escape = rest.get(pos..pos + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslError::MalformedRequest),
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes a saslname, the inverse of [`decode_saslname`].
pub(crate) fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Salt for an unknown user: deterministic per username and mechanism so
/// repeated probes see the same value, but unpredictable without the
/// per-process secret.
fn fake_salt(hash: Hash, username: &str) -> Vec<u8> {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        secret
    });
    let data = format!("{}\0{username}", hash.mechanism());
    let mut salt = crypto::hmac(Hash::Sha256, secret, data.as_bytes());
    salt.truncate(FAKE_SALT_LEN);
    salt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ScramClient;
    use crate::credentials::derive_with_salt;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const RFC5802_FIRST: &str = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
    const RFC5802_SERVER_FIRST: &str =
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    const RFC5802_FINAL: &str =
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    const RFC5802_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

    fn rfc5802_keys(password: &str) -> ScramKeys {
        let salt = BASE64_STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
        derive_with_salt(password, &salt, 4096, Hash::Sha1)
    }

    fn rfc5802_server() -> ScramServer {
        ScramServer::with_nonce_suffix(Hash::Sha1, "3rfcNHYJY1ZVvWVs7j")
    }

    /// Runs the RFC 5802 example up to server-first with the given keys.
    fn rfc5802_until_final(keys: Option<&ScramKeys>) -> ScramServer {
        let mut server = rfc5802_server();
        server.client_first(RFC5802_FIRST.as_bytes()).unwrap();
        server.server_first(keys);
        server
    }

    #[test]
    fn rfc5802_example() {
        let keys = rfc5802_keys("pencil");
        let mut server = rfc5802_server();
        let first = server.client_first(RFC5802_FIRST.as_bytes()).unwrap();
        assert_eq!(
            first,
            ClientFirst {
                username: "user".into(),
                authzid: None
            }
        );
        assert_eq!(server.username(), Some("user"));
        let server_first = server.server_first(Some(&keys));
        assert_eq!(server_first, RFC5802_SERVER_FIRST.as_bytes());
        assert!(!server.is_authenticated());
        let server_final = server.client_final(RFC5802_FINAL.as_bytes()).unwrap();
        assert_eq!(server_final, RFC5802_SERVER_FINAL.as_bytes());
        assert!(server.is_authenticated());
    }

    #[test]
    fn rfc7677_example() {
        let salt = BASE64_STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = derive_with_salt("pencil", &salt, 4096, Hash::Sha256);
        let mut server =
            ScramServer::with_nonce_suffix(Hash::Sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let first = server
            .client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
            .unwrap();
        assert_eq!(first.username, "user");
        assert_eq!(
            server.server_first(Some(&keys)),
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let server_final = server
            .client_final(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn wrong_password_is_not_authorized() {
        let keys = rfc5802_keys("not pencil");
        let mut server = rfc5802_until_final(Some(&keys));
        assert_eq!(
            server.client_final(RFC5802_FINAL.as_bytes()),
            Err(SaslError::NotAuthorized)
        );
        assert!(!server.is_authenticated());
        // The exchange is over after a failure.
        assert_eq!(
            server.client_final(RFC5802_FINAL.as_bytes()),
            Err(SaslError::MalformedRequest)
        );
    }

    fn salt_and_iterations(server_first: &[u8]) -> (String, String) {
        let s = std::str::from_utf8(server_first).unwrap();
        let mut parts = s.split(',').skip(1);
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    }

    #[test]
    fn unknown_user_fails_at_final_step_with_stable_salt() {
        let run = |hash, user: &str| {
            let mut server = ScramServer::new(hash);
            let mut client = ScramClient::new(hash, user, "pencil");
            server.client_first(&client.client_first()).unwrap();
            let server_first = server.server_first(None);
            // The client sees a normal-looking challenge...
            let client_final = client.handle_server_first(&server_first).unwrap();
            // ...and only the final step fails.
            assert_eq!(
                server.client_final(&client_final),
                Err(SaslError::NotAuthorized)
            );
            salt_and_iterations(&server_first)
        };
        for hash in [Hash::Sha1, Hash::Sha256] {
            let (salt_a, iter_a) = run(hash, "ghost");
            let (salt_b, iter_b) = run(hash, "ghost");
            assert_eq!(salt_a, salt_b);
            assert_eq!(iter_a, format!("i={DEFAULT_ITERATIONS}"));
            assert_eq!(iter_a, iter_b);
            let decoded = BASE64_STANDARD.decode(&salt_a[2..]).unwrap();
            assert_eq!(decoded.len(), FAKE_SALT_LEN);
            let (salt_c, _) = run(hash, "phantom");
            assert_ne!(salt_a, salt_c);
        }
        assert_ne!(run(Hash::Sha1, "ghost").0, run(Hash::Sha256, "ghost").0);
    }

    #[test]
    fn nonce_mismatch_is_rejected() {
        let keys = rfc5802_keys("pencil");
        let mut server = rfc5802_until_final(Some(&keys));
        let tampered = RFC5802_FINAL.replace("7j,p=", "7k,p=");
        assert_eq!(
            server.client_final(tampered.as_bytes()),
            Err(SaslError::NotAuthorized)
        );
        // Only the client nonce echoed back.
        let mut server = rfc5802_until_final(Some(&keys));
        let tampered = RFC5802_FINAL.replace("3rfcNHYJY1ZVvWVs7j", "");
        assert_eq!(
            server.client_final(tampered.as_bytes()),
            Err(SaslError::NotAuthorized)
        );
    }

    #[test]
    fn channel_binding_mismatch_is_rejected() {
        let keys = rfc5802_keys("pencil");
        // "eSws" is "y,,": differs from the "n,," header sent first.
        let mut server = rfc5802_until_final(Some(&keys));
        let tampered = RFC5802_FINAL.replace("c=biws", "c=eSws");
        assert_eq!(
            server.client_final(tampered.as_bytes()),
            Err(SaslError::NotAuthorized)
        );
    }

    #[test]
    fn y_flag_and_authzid_round_trip() {
        for hash in [Hash::Sha1, Hash::Sha256] {
            let salt = b"0123456789abcdef";
            let keys = derive_with_salt("pencil", salt, 64, hash);
            let mut client =
                ScramClient::new(hash, "user", "pencil").with_authzid("user@example.org");
            let mut server = ScramServer::new(hash);
            let first = server.client_first(&client.client_first()).unwrap();
            assert_eq!(first.authzid.as_deref(), Some("user@example.org"));
            assert_eq!(server.authzid(), Some("user@example.org"));
            let client_final = client
                .handle_server_first(&server.server_first(Some(&keys)))
                .unwrap();
            let server_final = server.client_final(&client_final).unwrap();
            client.verify_server_final(&server_final).unwrap();
        }

        // A 'y' header is echoed as "y,," ("eSws").
        let salt = b"0123456789abcdef";
        let keys = derive_with_salt("pencil", salt, 64, Hash::Sha1);
        let mut server = ScramServer::with_nonce_suffix(Hash::Sha1, "S");
        server.client_first(b"y,,n=user,r=C").unwrap();
        server.server_first(Some(&keys));
        let final_ok = client_final_for(&keys, Hash::Sha1, "y,,", "n=user,r=C", "r=CS");
        assert!(server.client_final(final_ok.as_bytes()).is_ok());
    }

    /// Computes a correct client-final-message by hand from the salted keys'
    /// inputs, independently of `ScramClient`.
    fn client_final_for(
        keys: &ScramKeys,
        hash: Hash,
        gs2: &str,
        bare: &str,
        nonce: &str,
    ) -> String {
        let salted = crypto::hi(hash, b"pencil", &keys.salt, keys.iterations);
        let client_key = crypto::hmac(hash, &salted, b"Client Key");
        let server_first = format!(
            "{nonce},s={},i={}",
            BASE64_STANDARD.encode(&keys.salt),
            keys.iterations
        );
        let without_proof = format!("c={},{nonce}", BASE64_STANDARD.encode(gs2));
        let auth = format!("{bare},{server_first},{without_proof}");
        let sig = crypto::hmac(hash, &keys.stored_key, auth.as_bytes());
        let proof = crypto::xor(&client_key, &sig);
        format!("{without_proof},p={}", BASE64_STANDARD.encode(proof))
    }

    #[test]
    fn username_escaping() {
        let mut server = ScramServer::new(Hash::Sha256);
        let first = server
            .client_first(b"n,a=a=3Db=2Cc,n=us=2Cer=3D,r=abc")
            .unwrap();
        assert_eq!(first.username, "us,er=");
        assert_eq!(first.authzid.as_deref(), Some("a=b,c"));
        assert_eq!(
            decode_saslname(&encode_saslname("=,x==,")).unwrap(),
            "=,x==,"
        );
    }

    #[test]
    fn username_is_saslpreped() {
        let mut server = ScramServer::new(Hash::Sha256);
        // U+00A0 (no-break space) maps to a space; U+00AD to nothing.
        let first = server
            .client_first("n,,n=a\u{00A0}b\u{00AD}c,r=abc".as_bytes())
            .unwrap();
        assert_eq!(first.username, "a bc");
    }

    #[test]
    fn malformed_client_first() {
        let cases: &[&[u8]] = &[
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=user,r=abc",
            b"p=tls-unique,,n=user,r=abc",
            b"p=tls-exporter,,n=user,r=abc",
            b"n,user,n=user,r=abc",
            b"n,a=,n=user,r=abc",
            b"n,a=x=41,n=user,r=abc",
            b"n,,r=abc",
            b"n,,n=user",
            b"n,,n=user,",
            b"n,,n=,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,n=user=2,r=abc",
            b"n,,n=user,r=",
            b"n,,n=user,r=a b",
            b"n,,n=user,x=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=user,r=abc,m=ext",
            b"n,,n=user,r=abc,x",
            b"n,,n=user,r=abc,1=x",
            b"n,,n=user,r=abc,",
            b"n,,n=user\0,r=abc",
            b"n,,n=us\xffer,r=abc",
            b"n,,n=\x07,r=abc",
        ];
        for case in cases {
            let mut server = ScramServer::new(Hash::Sha1);
            assert_eq!(
                server.client_first(case),
                Err(SaslError::MalformedRequest),
                "{:?}",
                String::from_utf8_lossy(case)
            );
            // A failed exchange stays failed.
            assert_eq!(
                server.client_first(RFC5802_FIRST.as_bytes()),
                Err(SaslError::MalformedRequest)
            );
        }
        // An optional extension is fine.
        let mut server = ScramServer::new(Hash::Sha1);
        assert!(server.client_first(b"n,,n=user,r=abc,x=ext").is_ok());
    }

    #[test]
    fn malformed_client_final() {
        let keys = rfc5802_keys("pencil");
        let nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let cases: Vec<(String, SaslError)> = vec![
            (String::new(), SaslError::MalformedRequest),
            ("c=biws".into(), SaslError::MalformedRequest),
            (format!("c=biws,r={nonce}"), SaslError::MalformedRequest),
            (
                format!("r={nonce},c=biws,p=AAAA"),
                SaslError::MalformedRequest,
            ),
            (
                format!("c=biws,p=AAAA,r={nonce}"),
                SaslError::MalformedRequest,
            ),
            ("c=biws,p=AAAA".into(), SaslError::MalformedRequest),
            (
                format!("c=biws,r={nonce},m=x,p=AAAA"),
                SaslError::MalformedRequest,
            ),
            (
                format!("c=biws,r={nonce},p=AAAA\0"),
                SaslError::MalformedRequest,
            ),
            (
                format!("c=b!ws,r={nonce},p=AAAA"),
                SaslError::IncorrectEncoding,
            ),
            (
                format!("c=biws,r={nonce},p=AA*A"),
                SaslError::IncorrectEncoding,
            ),
            (
                format!("c=biws,r={nonce},p=AAA"),
                SaslError::IncorrectEncoding,
            ),
            (format!("c=biws,r={nonce},p="), SaslError::NotAuthorized),
            (format!("c=biws,r={nonce},p=AAAA"), SaslError::NotAuthorized),
            (format!("c=,r={nonce},p=AAAA"), SaslError::NotAuthorized),
        ];
        for (case, expected) in cases {
            let mut server = rfc5802_until_final(Some(&keys));
            assert_eq!(
                server.client_final(case.as_bytes()),
                Err(expected),
                "{case:?}"
            );
        }
        // An optional extension before the proof is accepted, but it is part
        // of AuthMessage, so the RFC proof no longer matches.
        let mut server = rfc5802_until_final(Some(&keys));
        let with_ext = RFC5802_FINAL.replace(",p=", ",x=ext,p=");
        assert_eq!(
            server.client_final(with_ext.as_bytes()),
            Err(SaslError::NotAuthorized)
        );
    }

    #[test]
    fn steps_out_of_order() {
        let keys = rfc5802_keys("pencil");

        let mut server = rfc5802_server();
        assert_eq!(
            server.client_final(RFC5802_FINAL.as_bytes()),
            Err(SaslError::MalformedRequest)
        );

        let mut server = rfc5802_server();
        assert!(server.server_first(Some(&keys)).is_empty());
        assert_eq!(
            server.client_first(RFC5802_FIRST.as_bytes()),
            Err(SaslError::MalformedRequest)
        );

        let mut server = rfc5802_server();
        server.client_first(RFC5802_FIRST.as_bytes()).unwrap();
        assert_eq!(
            server.client_first(RFC5802_FIRST.as_bytes()),
            Err(SaslError::MalformedRequest)
        );

        let mut server = rfc5802_server();
        server.client_first(RFC5802_FIRST.as_bytes()).unwrap();
        assert_eq!(
            server.client_final(RFC5802_FINAL.as_bytes()),
            Err(SaslError::MalformedRequest)
        );

        let mut server = rfc5802_until_final(Some(&keys));
        assert!(server.server_first(Some(&keys)).is_empty());

        // Nothing is accepted after success either.
        let mut server = rfc5802_until_final(Some(&keys));
        server.client_final(RFC5802_FINAL.as_bytes()).unwrap();
        assert_eq!(
            server.client_final(RFC5802_FINAL.as_bytes()),
            Err(SaslError::MalformedRequest)
        );
        assert!(server.is_authenticated());
    }

    #[test]
    fn random_nonces_use_the_conservative_alphabet_and_are_distinct() {
        let a = random_nonce(NONCE_LEN);
        let b = random_nonce(NONCE_LEN);
        assert_eq!(a.len(), NONCE_LEN);
        assert!(is_valid_nonce(&a));
        assert_ne!(a, b);
        // Letters, digits, '+' and '/' come out; '=', '"' and ',' never do.
        let many = random_nonce(20_000);
        assert!(is_valid_nonce(&many));
        assert!(many
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'));
        assert!(
            many.contains('+') && many.contains('/') && many.contains('z') && many.contains('0')
        );
    }

    #[test]
    fn round_trip_both_hashes() {
        for hash in [Hash::Sha1, Hash::Sha256] {
            let creds = crate::credentials::derive("pencil", 128).unwrap();
            for user in ["user", "we,ird=name"] {
                let mut client = ScramClient::new(hash, user, "pencil");
                let mut server = ScramServer::new(hash);
                let first = server.client_first(&client.client_first()).unwrap();
                assert_eq!(first.username, user);
                assert_eq!(first.authzid, None);
                let server_first = server.server_first(Some(creds.keys(hash)));
                let client_final = client.handle_server_first(&server_first).unwrap();
                let server_final = server.client_final(&client_final).unwrap();
                assert!(server.is_authenticated());
                client.verify_server_final(&server_final).unwrap();
            }
            // Wrong password through the client.
            let mut client = ScramClient::new(hash, "user", "pencil!");
            let mut server = ScramServer::new(hash);
            server.client_first(&client.client_first()).unwrap();
            let server_first = server.server_first(Some(creds.keys(hash)));
            let client_final = client.handle_server_first(&server_first).unwrap();
            assert_eq!(
                server.client_final(&client_final),
                Err(SaslError::NotAuthorized)
            );
        }
    }

    /// Random bytes and mutations of valid messages at both steps: any
    /// result is fine as long as nothing panics.
    #[test]
    fn fuzz_never_panics() {
        let mut rng = StdRng::seed_from_u64(0x5ca1ab1e);
        let keys = rfc5802_keys("pencil");
        let alphabet = b"nyp=,ac=rmx\0\xff=2C=3Dbiws+/AZ";
        let mutate = |rng: &mut StdRng, base: &[u8]| -> Vec<u8> {
            let mut v = base.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let op = rng.random_range(0..3);
                let pos = rng.random_range(0..=v.len());
                let byte = alphabet[rng.random_range(0..alphabet.len())];
                match op {
                    0 if pos < v.len() => v[pos] = byte,
                    1 if pos < v.len() => {
                        v.remove(pos);
                    }
                    _ => v.insert(pos, byte),
                }
            }
            v
        };
        for i in 0..400 {
            let first = if i % 2 == 0 {
                let len = rng.random_range(0..64);
                (0..len).map(|_| rng.random()).collect()
            } else {
                mutate(&mut rng, RFC5802_FIRST.as_bytes())
            };
            let mut server = rfc5802_server();
            let _ = server.client_first(&first);

            let last = if i % 2 == 0 {
                let len = rng.random_range(0..128);
                (0..len).map(|_| rng.random()).collect()
            } else {
                mutate(&mut rng, RFC5802_FINAL.as_bytes())
            };
            let mut server = rfc5802_until_final(if i % 3 == 0 { None } else { Some(&keys) });
            let _ = server.client_final(&last);
        }
    }

    /// One full exchange between our client and server; the outcome.
    fn exchange(
        mut server: ScramServer,
        mut client: crate::client::ScramClient,
    ) -> Result<(), SaslError> {
        let creds = crate::credentials::derive("pencil", 4096).unwrap();
        let first = server.client_first(&client.client_first())?;
        assert_eq!(first.username, "user");
        let server_first = server.server_first(Some(&creds.sha256));
        let fin = client.handle_server_first(&server_first)?;
        let server_final = server.client_final(&fin)?;
        client.verify_server_final(&server_final)
    }

    fn client() -> crate::client::ScramClient {
        crate::client::ScramClient::new(Hash::Sha256, "user", "pencil")
    }

    fn plus(data: &[u8]) -> Binding {
        Binding {
            offered: vec![
                ("tls-exporter".into(), b"exported".to_vec()),
                ("tls-server-end-point".into(), data.to_vec()),
            ],
            plus: true,
        }
    }

    #[test]
    fn plus_binds_to_the_channel_and_refuses_other_data() {
        let server = || ScramServer::new(Hash::Sha256).with_binding(plus(b"cert hash"));
        let ok = client().with_channel_binding("tls-server-end-point", b"cert hash".to_vec());
        assert!(exchange(server(), ok).is_ok());
        let other = client().with_channel_binding("tls-server-end-point", b"another cert".to_vec());
        assert!(exchange(server(), other).is_err(), "a different channel");
        let wrong_type = client().with_channel_binding("tls-exporter", b"cert hash".to_vec());
        assert!(
            exchange(server(), wrong_type).is_err(),
            "a type we do not do"
        );
        assert!(
            exchange(server(), client()).is_err(),
            "-PLUS without binding"
        );
    }

    #[test]
    fn a_y_flag_is_a_downgrade_when_plus_was_offered() {
        let offered = Binding {
            offered: vec![("tls-server-end-point".into(), b"x".to_vec())],
            plus: false,
        };
        let server = ScramServer::new(Hash::Sha256).with_binding(offered);
        assert!(exchange(server, client().saying_y()).is_err());
        let not_offered = ScramServer::new(Hash::Sha256);
        assert!(exchange(not_offered, client().saying_y()).is_ok());
    }

    #[test]
    fn the_downgrade_protection_hash_covers_mechanisms_and_binding_types() {
        let advertised = [
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN",
        ];
        let types = ["tls-server-end-point"];
        let server =
            || ScramServer::new(Hash::Sha256).with_downgrade_protection(&advertised, Some(&types));
        let seen_all = client().expecting_ssdp(&advertised, Some(&types));
        assert!(exchange(server(), seen_all).is_ok());
        // A man in the middle stripped the stronger mechanisms.
        let stripped = client().expecting_ssdp(&["SCRAM-SHA-1", "PLAIN"], Some(&types));
        assert!(exchange(server(), stripped).is_err());
        // Or the channel-binding types.
        let no_types = client().expecting_ssdp(&advertised, None);
        assert!(exchange(server(), no_types).is_err());
        assert_eq!(
            ssdp_string(&["b", "a"], Some(&["y", "x"])),
            "a\u{1e}b\u{1f}x\u{1e}y"
        );
    }
}
