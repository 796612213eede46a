//! Certificates between servers (RFC 6120 §13.7.2, RFC 6125/9525,
//! XEP-0178): a peer is authenticated by its certificate when the chain
//! leads to a trust anchor (the system's, plus `[s2s] ca_file`) and a
//! DNS-ID names the peer's domain; the common name is never looked at.
//!
//! Both directions check with serverAuth usage, as a TLS client checks a
//! server: the peer *is* a server, and certificates issued today often
//! carry no clientAuth usage any more. So the TLS layer itself accepts any
//! certificate, and whether it proves the domain is decided here, once the
//! stream says which domain it speaks for. A certificate that does not
//! prove it leaves Server Dialback (XEP-0220), if the operator allows it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::tls::TlsError;

/// ALPN protocol of direct TLS server streams (XEP-0368).
pub const ALPN: &[u8] = b"xmpp-server";

/// Our identity and the anchors we trust for peers.
pub struct S2sTls {
    provider: Arc<CryptoProvider>,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// `None` when there is no trust anchor at all: nothing verifies.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    /// For incoming streams (STARTTLS and direct TLS).
    acceptor: Arc<rustls::ServerConfig>,
}

impl S2sTls {
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca_file: Option<&Path>,
    ) -> Result<S2sTls, TlsError> {
        let provider = Arc::new(crate::tls::provider());
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_file {
            let extra = crate::tls::read_certs(path)?;
            let (ok, bad) = roots.add_parsable_certificates(extra);
            if ok == 0 {
                return Err(TlsError::Empty { path: path.into() });
            }
            if bad > 0 {
                tracing::warn!(path = %path.display(), bad, "unusable certificates in s2s.ca_file");
            }
        }
        tracing::debug!(system = added, total = roots.len(), "s2s trust anchors");
        let verifier = if roots.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok()
        };
        let any_client = Arc::new(AnyCertificate {
            provider: provider.clone(),
        });
        let mut acceptor = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(any_client)
            .with_single_cert(certs.clone(), key.clone_key())?;
        acceptor.alpn_protocols = vec![ALPN.to_vec()];
        Ok(S2sTls {
            provider,
            certs,
            key,
            verifier,
            acceptor: Arc::new(acceptor),
        })
    }

    pub fn acceptor(&self) -> Arc<rustls::ServerConfig> {
        self.acceptor.clone()
    }

    /// A client config for one outgoing connection, presenting our
    /// certificate. The handshake goes on whatever the peer presents when
    /// `dialback_allowed`; `verified` then says whether it proved `domain`.
    pub fn client_config(
        &self,
        dialback_allowed: bool,
        direct_tls: bool,
    ) -> Result<(Arc<rustls::ClientConfig>, Arc<AtomicBool>), TlsError> {
        let verified = Arc::new(AtomicBool::new(false));
        let recording = Arc::new(Recording {
            inner: self.verifier.clone(),
            provider: self.provider.clone(),
            verified: verified.clone(),
            tolerate: dialback_allowed,
        });
        let mut cfg = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(recording)
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())?;
        if direct_tls {
            cfg.alpn_protocols = vec![ALPN.to_vec()];
        }
        Ok((Arc::new(cfg), verified))
    }

    /// Whether `chain` (end entity first) proves `domain` (DNS-ID, chain
    /// to a trust anchor, serverAuth usage, within its validity).
    pub fn proves(&self, chain: &[CertificateDer<'_>], domain: &str) -> bool {
        let (Some(verifier), Some((end, intermediates))) = (&self.verifier, chain.split_first())
        else {
            return false;
        };
        let Ok(name) = ServerName::try_from(domain.to_string()) else {
            return false;
        };
        verifier
            .verify_server_cert(end, intermediates, &name, &[], UnixTime::now())
            .is_ok()
    }
}

/// Handshake signatures are checked the same way whatever we think of
/// the certificate (the peer must hold its key): the three methods both
/// verifier traits ask for, on a `provider` field.
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.provider.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.provider.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Outgoing: verify as webpki does, remember the verdict, and (when
/// dialback may stand in) let the handshake go on either way.
#[derive(Debug)]
struct Recording {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    verified: Arc<AtomicBool>,
    tolerate: bool,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = match &self.inner {
            Some(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
            None => Err(rustls::Error::General("no trust anchors".into())),
        };
        self.verified.store(result.is_ok(), Ordering::Relaxed);
        match result {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(_) if self.tolerate => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    signature_checks!();
}

/// Incoming: ask for a certificate, take any (its signature over the
/// handshake is still checked, so the peer holds its key); `proves`
/// decides later what it is good for.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    signature_checks!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a leaf for `names`, with the given extended key usages.
    fn issue(
        names: &[&str],
        usages: Vec<rcgen::ExtendedKeyUsagePurpose>,
    ) -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = usages;
        // A common name that is not a DNS-ID must not count.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cn.example");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf = params.signed_by(&key, &issuer).unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (ca.pem(), vec![leaf.der().clone()], der)
    }

    fn with_ca(
        ca_pem: &str,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> S2sTls {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca_pem).unwrap();
        S2sTls::new(certs, key, Some(&path)).unwrap()
    }

    #[test]
    fn a_dns_id_proves_the_domain_and_the_common_name_does_not() {
        use rcgen::ExtendedKeyUsagePurpose::ServerAuth;
        let (ca, chain, key) = issue(&["a.test", "conference.a.test"], vec![ServerAuth]);
        let tls = with_ca(&ca, chain.clone(), key);
        assert!(
            tls.proves(&chain, "a.test"),
            "serverAuth-only certificates are accepted"
        );
        assert!(tls.proves(&chain, "conference.a.test"));
        assert!(!tls.proves(&chain, "b.test"));
        assert!(!tls.proves(&chain, "cn.example"));
        assert!(!tls.proves(&[], "a.test"));
    }

    #[test]
    fn a_certificate_from_an_unknown_issuer_proves_nothing() {
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let (_, chain, key) = issue(&["a.test"], vec![ServerAuth, ClientAuth]);
        let (other_ca, _, _) = issue(&["x.test"], vec![ServerAuth]);
        let tls = with_ca(&other_ca, chain.clone(), key);
        assert!(!tls.proves(&chain, "a.test"));
    }
}
