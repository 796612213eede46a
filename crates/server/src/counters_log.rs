//! Logs the server's counters once a minute when they changed, so the
//! saving of account-based MUC joining (stanzas received from rooms versus
//! copies forked to sessions) is visible without a metrics scraper.

use std::sync::Arc;
use std::time::Duration;

use roost_core::Server;

pub fn spawn(server: &Arc<Server>) {
    let server = server.clone();
    tokio::spawn(async move {
        let mut shutdown = server.shutdown_signal();
        let mut last = server.counters.snapshot();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = roost_core::server::until_shutdown(&mut shutdown) => return,
            }
            let now = server.counters.snapshot();
            if now != last {
                let fields: Vec<String> = now.iter().map(|(k, v)| format!("{k}={v}")).collect();
                tracing::info!(counters = %fields.join(" "), "counters");
                last = now;
            }
        }
    });
}
