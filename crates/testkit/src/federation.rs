//! Two Roost servers federating on loopback: `a.test` on 127.0.0.2 and
//! `b.test` on 127.0.0.3, each with a certificate from a test CA (both
//! serverAuth and clientAuth usages, for its domain and its MUC service)
//! and a static route to the other, so no DNS is involved.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use roost_server::Config;
use tempfile::TempDir;

use crate::TestServer;

/// A certificate authority that exists for one test.
pub struct TestCa {
    dir: TempDir,
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Roost test CA");
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write CA");
        TestCa { dir, params, key }
    }

    /// The CA's certificate (PEM), for `[s2s] ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate and key (PEM files) for these names.
    pub fn issue(&self, names: &[&str], file: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        let cert_path = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// A free TCP port on `ip` (bound and released: good enough for tests).
pub fn free_port(ip: &str) -> SocketAddr {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// How one side of a pair is set up.
pub struct Side {
    pub domain: &'static str,
    pub s2s: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Federation settings for `me`, routing to `peer`.
pub fn configure(c: &mut Config, me: &Side, peer: &Side, ca_file: &Path) {
    c.domain = me.domain.into();
    c.tls.cert = Some(me.cert.clone());
    c.tls.key = Some(me.key.clone());
    c.listen.s2s = me.s2s.to_string().as_str().into();
    c.s2s.ca_file = Some(ca_file.to_path_buf());
    c.s2s.connect_timeout = 5;
    for d in [
        peer.domain.to_string(),
        format!("conference.{}", peer.domain),
    ] {
        c.s2s.hosts.insert(d, peer.s2s.to_string());
    }
}

/// `a.test` and `b.test`, federating; `tweak` adjusts each side's config
/// (first argument: which side, "a" or "b").
pub async fn pair_with(ca: &TestCa, tweak: impl Fn(&str, &mut Config)) -> (TestServer, TestServer) {
    let sides: Vec<Side> = [("a.test", "127.0.0.2"), ("b.test", "127.0.0.3")]
        .into_iter()
        .map(|(domain, ip)| {
            let (cert, key) = ca.issue(&[domain, &format!("conference.{domain}")], domain);
            Side {
                domain,
                s2s: free_port(ip),
                cert,
                key,
            }
        })
        .collect();
    let ca_file = ca.ca_file();
    let a = TestServer::start_with(|c| {
        configure(c, &sides[0], &sides[1], &ca_file);
        tweak("a", c);
    })
    .await;
    let b = TestServer::start_with(|c| {
        configure(c, &sides[1], &sides[0], &ca_file);
        tweak("b", c);
    })
    .await;
    (a, b)
}

pub async fn pair(ca: &TestCa) -> (TestServer, TestServer) {
    pair_with(ca, |_, _| {}).await
}

/// TLS settings for a test playing a peer server: any server certificate
/// is accepted; `identity` (certificate and key files) is presented.
pub fn peer_tls(identity: Option<(&Path, &Path)>) -> std::sync::Arc<rustls::ClientConfig> {
    let cfg = match identity {
        Some((cert, key)) => {
            let dir = tempfile::tempdir().expect("temp dir");
            let (certs, key) =
                roost_core::tls::identity(Some(cert), Some(key), "unused", dir.path())
                    .expect("identity");
            roost_insecure_tls::client_config_with_cert(&[], certs, key).expect("tls")
        }
        None => roost_insecure_tls::client_config(&[]).expect("tls"),
    };
    std::sync::Arc::new(cfg)
}

/// `user` created on `s` and logged in as `res`, with initial presence.
pub async fn online(s: &TestServer, user: &str, res: &str) -> crate::Client {
    s.user(user).await;
    let mut c = s.login(user, res).await;
    c.available().await;
    c
}

/// `x` asks `y` (`y_bare`) for a subscription and `y` approves it.
pub async fn subscribe(x: &mut crate::Client, y: &mut crate::Client, y_bare: &str) {
    x.send(&format!("<presence to='{y_bare}' type='subscribe'/>"))
        .await;
    let req = y
        .expect("subscribe", |e| {
            e.name() == "presence" && e.attr("type") == Some("subscribe")
        })
        .await;
    let from = req.attr("from").unwrap_or_default().to_string();
    y.send(&format!("<presence to='{from}' type='subscribed'/>"))
        .await;
}
