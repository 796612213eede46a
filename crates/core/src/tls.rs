//! TLS server configuration (RFC 6120 §5, XEP-0368): the operator's PEM
//! files, or a self-signed certificate generated once into the data folder
//! so that the embedded defaults work out of the box.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no certificate or key found")]
    Empty { path: PathBuf },
    #[error("tls.cert and tls.key must be given together")]
    Incomplete,
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Paths of the generated certificate inside the data folder.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("tls/cert.pem"), data_dir.join("tls/key.pem"))
}

/// The certificate chain and key: the operator's PEM files, or a
/// self-signed certificate for `domain` kept in `data_dir` (generated on
/// first use).
pub fn identity(
    cert: Option<&Path>,
    key: Option<&Path>,
    domain: &str,
    data_dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        (None, None) => {
            let (c, k) = generated_paths(data_dir);
            if !c.exists() || !k.exists() {
                generate_self_signed(domain, &c, &k)?;
            }
            (c, k)
        }
        _ => return Err(TlsError::Incomplete),
    };
    Ok((read_certs(&cert_path)?, read_key(&key_path)?))
}

/// The crypto provider of every TLS config: ring, with AES-128-GCM first
/// (see `preference`).
pub fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| preference(s.suite()));
    provider
}

/// Build the rustls config from `cert`/`key`, or from a self-signed
/// certificate for `domain` kept in `data_dir` (generated on first use).
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    domain: &str,
    data_dir: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = identity(cert, key, domain, data_dir)?;
    client_server_config(certs, key)
}

/// The c2s config for an identity already read (see `identity`).
pub fn client_server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    // The server's order decides (see `preference`), so that every client
    // that offers AES-128-GCM gets it.
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.ignore_client_order = true;
    // RFC 9266 tls-exporter for SCRAM-*-PLUS (see c2s/tls_exporter.rs).
    cfg.key_log = Arc::new(crate::c2s::tls_exporter::Capture);
    // XEP-0368: direct TLS clients announce "xmpp-client" via ALPN.
    cfg.alpn_protocols = vec![b"xmpp-client".to_vec()];
    Ok(Arc::new(cfg))
}

/// The same config for TLS that is not a client stream's (HTTPS): no
/// exporter capture (c2s/tls_exporter.rs), which only those streams take.
pub fn without_exporter_capture(cfg: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut c = (**cfg).clone();
    c.key_log = Arc::new(rustls::NoKeyLog);
    Arc::new(c)
}

/// Lower is preferred; suites not named keep their relative order after
/// these. AES-128-GCM with SHA-256 first: as safe, and cheaper per
/// handshake (the key schedule's SHA-256 has hardware support where
/// SHA-384 often has none) and per record.
fn preference(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS13_CHACHA20_POLY1305_SHA256 => 1,
        S::TLS13_AES_256_GCM_SHA384 => 2,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        _ => 4,
    }
}

pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Empty { path: path.into() });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    match rustls_pemfile::private_key(&mut data.as_slice()) {
        Ok(Some(k)) => Ok(k),
        _ => Err(TlsError::Empty { path: path.into() }),
    }
}

fn generate_self_signed(domain: &str, cert: &Path, key: &Path) -> Result<(), TlsError> {
    let names = vec![domain.to_string(), format!("*.{domain}")];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.into(),
            source,
        })?;
    }
    write_private(key, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, generated.cert.pem()).map_err(|source| TlsError::Write {
        path: cert.into(),
        source,
    })?;
    tracing::info!(path = %cert.display(), "generated a self-signed certificate");
    Ok(())
}

/// The key file is readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|source| TlsError::Write {
        path: path.into(),
        source,
    })?;
    f.write_all(data).map_err(|source| TlsError::Write {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_prefers_aes_128_gcm_whatever_the_client_lists_first() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = server_config(None, None, "localhost", dir.path()).unwrap();
        assert!(cfg.ignore_client_order);
        let first = cfg.crypto_provider().cipher_suites[0].suite();
        assert_eq!(first, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        // Nothing was dropped: every default suite is still offered.
        let defaults = rustls::crypto::ring::default_provider().cipher_suites.len();
        assert_eq!(cfg.crypto_provider().cipher_suites.len(), defaults);
    }
}
