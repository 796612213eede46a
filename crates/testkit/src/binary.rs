//! Tests that run the built `roost` binary (crash safety, the cluster):
//! where it is, and a free loopback port to give it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// `ROOST_BIN`, else `target/<profile>/roost` beside the test's own binary
/// (`target/<profile>/deps/<test>-…`).
pub fn roost_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ROOST_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("roost"))
        .expect("target folder");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p roost-server --bin roost` first or set ROOST_BIN",
        bin.display()
    );
    bin
}

/// A loopback port free at this moment.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
