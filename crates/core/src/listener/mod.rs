//! Accept loops for client connections: STARTTLS on `listen.c2s`, direct
//! TLS on `listen.c2s_tls` (XEP-0368). A listener takes an already bound
//! socket, so tests bind port 0; connections beyond `max_connections` are
//! refused at once.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::c2s;
use crate::server::Server;

pub async fn serve_c2s(server: Arc<Server>, listener: TcpListener, direct_tls: bool) {
    let mut shutdown = server.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::server::until_shutdown(&mut shutdown) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = server.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            drop(tcp);
            continue;
        };
        tokio::spawn(c2s::serve_connection(
            server.clone(),
            tcp,
            peer,
            direct_tls,
            permit,
        ));
    }
}
