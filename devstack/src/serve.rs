//! HTTP servers that really stop when their handle is dropped.
//!
//! Aborting an `axum::serve` task closes the listener but leaves keep-alive connections
//! (each its own task) answering; a "stopped" origin would then keep serving its
//! clients. Graceful shutdown closes idle connections and lets in-flight requests end.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running server; dropping it stops accepting and closes its connections.
#[derive(Debug)]
pub(crate) struct Server {
    shutdown: Option<oneshot::Sender<()>>,
}

impl Server {
    /// Serves `router`; handlers may extract `ConnectInfo<SocketAddr>`.
    pub fn spawn(listener: TcpListener, router: Router, what: &'static str) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "{what} server stopped");
            }
        });
        Server { shutdown: Some(tx) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
