//! Channel binding for SCRAM-*-PLUS and FAST HT-*-EXPR/-ENDP, advertised
//! with XEP-0440: RFC 9266 `tls-exporter` (TLS 1.3, see `tls_exporter.rs`)
//! and RFC 5929 `tls-server-end-point`, the hash of our own certificate.

use minidom::Element;
use roost_proto::Elem;
use sha2::Digest;

pub const NS: &str = "urn:xmpp:sasl-cb:0";
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";
pub const TLS_EXPORTER: &str = "tls-exporter";

/// RFC 5929 §4.1: the certificate hashed with its signature's hash, or
/// SHA-256 where that is MD5 or SHA-1; `None` for signatures without one
/// such hash (Ed25519, RSASSA-PSS), where the type is not offered.
pub fn server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    let digest = match oid.as_str() {
        // md5/sha1/sha256 with RSA; ecdsa with SHA-1/SHA-256
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2" => sha2::Sha256::digest(cert_der).to_vec(),
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(cert_der).to_vec(),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(cert_der).to_vec(),
        _ => return None,
    };
    Some(digest)
}

/// XEP-0440: the types a client may bind to on this connection.
pub fn feature(types: &[&str]) -> Element {
    Element::bare("sasl-channel-binding", NS).children_from(
        types
            .iter()
            .map(|t| Element::bare("channel-binding", NS).attr_set("type", *t)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        rcgen::CertificateParams::new(vec!["example.org".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn the_certificate_is_hashed_with_its_signature_hash() {
        let p256 = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            server_end_point(&p256),
            Some(sha2::Sha256::digest(&p256).to_vec())
        );
        let p384 = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(
            server_end_point(&p384),
            Some(sha2::Sha384::digest(&p384).to_vec())
        );
        assert_eq!(server_end_point(b"not a certificate"), None);
    }
}
