//! RFC 9266 `tls-exporter` channel binding on our client TLS streams.
//!
//! rustls's unbuffered connections (`tls_stream.rs`) have no keying
//! material exporter, but rustls hands the TLS 1.3 exporter master secret
//! to the config's key log. [`Capture`] keeps it in a thread-local slot
//! for the duration of one synchronous `process_tls_records` call of the
//! stream driving the handshake, which takes it at once; the stream then
//! derives the 32 bytes of RFC 9266 (RFC 8446 §7.5: label
//! `EXPORTER-Channel-Binding`, empty context) and forgets the secret.
//! TLS 1.2 connections get no exporter binding.

use std::cell::RefCell;

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

pub const LABEL: &str = "EXPORTER-Channel-Binding";

thread_local! {
    static SLOT: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The key log of the client-facing TLS config: keeps only
/// `EXPORTER_SECRET`, only until the stream that made it takes it.
#[derive(Debug)]
pub struct Capture;

impl rustls::KeyLog for Capture {
    fn will_log(&self, label: &str) -> bool {
        label == "EXPORTER_SECRET"
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "EXPORTER_SECRET" {
            SLOT.with(|s| *s.borrow_mut() = Some(secret.to_vec()));
        }
    }
}

/// Empty the slot (before a handshake step, so nothing another
/// connection's handshake left on this thread is taken for ours).
pub fn clear() {
    SLOT.with(|s| s.borrow_mut().take());
}

/// The secret logged since `clear`, if any.
pub fn take() -> Option<Vec<u8>> {
    SLOT.with(|s| s.borrow_mut().take())
}

fn hmac(sha384: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        match <M as Mac>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    if sha384 {
        run::<Hmac<Sha384>>(key, data)
    } else {
        run::<Hmac<Sha256>>(key, data)
    }
}

fn hash_empty(sha384: bool) -> Vec<u8> {
    use sha2::Digest;
    if sha384 {
        Sha384::digest(b"").to_vec()
    } else {
        Sha256::digest(b"").to_vec()
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) for outputs of one hash block at most.
fn expand_label(sha384: bool, secret: &[u8], label: &str, context: &[u8], len: usize) -> Vec<u8> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len() + context.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    info.push(1);
    let mut out = hmac(sha384, secret, &info);
    out.truncate(len);
    out
}

/// RFC 8446 §7.5 exporter with RFC 9266's label, empty context, 32 bytes.
pub fn channel_binding(exporter_master_secret: &[u8], sha384: bool) -> Vec<u8> {
    let hash_len = if sha384 { 48 } else { 32 };
    let derived = expand_label(
        sha384,
        exporter_master_secret,
        LABEL,
        &hash_empty(sha384),
        hash_len,
    );
    expand_label(sha384, &derived, "exporter", &hash_empty(sha384), 32)
}
