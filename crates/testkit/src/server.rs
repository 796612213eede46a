//! A real server for a test: loopback, port 0, temporary data folder.

use std::net::SocketAddr;
use std::path::Path;

use jid::BareJid;
use roost_server::{Config, Running};
use tempfile::TempDir;

pub struct TestServer {
    pub running: Running,
    pub config: Config,
    /// Kept so the folder outlives the server; removed on drop.
    pub dir: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Start with the defaults of a test, adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            log: "warn".into(),
            ..Config::default()
        };
        config.listen.c2s = "127.0.0.1:0".into();
        config.listen.c2s_tls = "127.0.0.1:0".into();
        config.listen.http = "127.0.0.1:0".into();
        config.listen.https = "127.0.0.1:0".into();
        config.listen.component = "127.0.0.1:0".into();
        config.listen.proxy65 = "127.0.0.1:0".into();
        tweak(&mut config);
        let running = roost_server::start(&config).await.expect("server starts");
        TestServer {
            running,
            config,
            dir,
        }
    }

    /// Start again on the same data folder (after `stop`), as after a restart.
    pub async fn restart(self) -> TestServer {
        self.running.stop().await;
        let TestServer {
            mut config, dir, ..
        } = self;
        config.listen.c2s = "127.0.0.1:0".into();
        config.listen.c2s_tls = "127.0.0.1:0".into();
        config.listen.http = "127.0.0.1:0".into();
        config.listen.https = "127.0.0.1:0".into();
        config.listen.component = "127.0.0.1:0".into();
        config.listen.proxy65 = "127.0.0.1:0".into();
        let running = roost_server::start(&config).await.expect("server restarts");
        TestServer {
            running,
            config,
            dir,
        }
    }

    pub fn c2s(&self) -> SocketAddr {
        self.running.c2s.expect("c2s listener")
    }

    pub fn c2s_tls(&self) -> SocketAddr {
        self.running.c2s_tls.expect("c2s_tls listener")
    }

    /// The HTTP listener (RFC 7395 WebSocket, XEP-0156 host-meta).
    pub fn http(&self) -> SocketAddr {
        self.running.http.expect("http listener")
    }

    /// The HTTPS listener.
    pub fn https(&self) -> SocketAddr {
        self.running.https.expect("https listener")
    }

    /// The SOCKS5 listener of the bytestreams proxy (XEP-0065).
    pub fn proxy65(&self) -> SocketAddr {
        self.running.proxy65.expect("proxy65 listener")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn domain(&self) -> &str {
        &self.config.domain
    }

    /// Create an account directly in the store.
    pub async fn add_user(&self, name: &str, password: &str) -> BareJid {
        let jid = BareJid::new(&format!("{name}@{}", self.config.domain)).expect("valid jid");
        let creds = roost_sasl::credentials::derive(password, 4096).expect("derive");
        let created = self
            .running
            .server
            .stores
            .accounts
            .create_account(&jid, &creds)
            .await
            .expect("store");
        assert!(created, "{jid} already existed");
        jid
    }

    /// Log in `name` with password "pw-<name>" over STARTTLS and bind `resource`.
    pub async fn login(&self, name: &str, resource: &str) -> crate::Client {
        crate::Client::login(
            self.c2s(),
            crate::Login::new(name, &format!("pw-{name}"))
                .resource(resource)
                .domain(self.domain()),
        )
        .await
        .expect("login")
    }

    /// Log in `name` with password "pw-<name>" over WebSocket (plain `ws`
    /// on loopback) and bind `resource`.
    pub async fn login_ws(&self, name: &str, resource: &str) -> crate::Client {
        crate::Client::login_ws(
            self.http(),
            false,
            crate::Login::new(name, &format!("pw-{name}"))
                .resource(resource)
                .domain(self.domain()),
        )
        .await
        .expect("login over WebSocket")
    }

    /// Create `name` with password "pw-<name>".
    pub async fn user(&self, name: &str) -> BareJid {
        self.add_user(name, &format!("pw-{name}")).await
    }
}
