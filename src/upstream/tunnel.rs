//! Byte-for-byte tunnels for upgraded connections (exec, attach, port-forward over WebSocket or
//! SPDY). Canopy has already authorized the request; after the `101` it only copies bytes, until
//! either side closes or shutdown closes them all once the grace period is over.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// Ends a tunnel before either side closes it (a reload refusing the request now). Holding it
/// keeps alive whatever cancels it.
#[derive(Clone)]
pub struct StreamEnd {
    token: CancellationToken,
    _keep: Arc<dyn Send + Sync>,
}

impl StreamEnd {
    /// Ends the stream once `token` is cancelled; `keep` lives as long as the stream.
    pub fn new(token: CancellationToken, keep: Arc<dyn Send + Sync>) -> Self {
        Self { token, _keep: keep }
    }

    async fn ended(&self) {
        self.token.cancelled().await
    }
}

/// Spawns and tracks tunnels.
#[derive(Clone)]
pub struct Tunnels {
    tracker: TaskTracker,
    close: Arc<watch::Sender<bool>>,
    metrics: Metrics,
}

impl Tunnels {
    pub fn new(metrics: Metrics) -> Self {
        Self { tracker: TaskTracker::new(), close: Arc::new(watch::Sender::new(false)), metrics }
    }

    /// Joins the client's and the upstream's upgraded connections in a background task, until
    /// either side closes, shutdown, or `end`.
    pub fn spawn(&self, client: OnUpgrade, upstream: OnUpgrade, end: Option<StreamEnd>) {
        let mut close = self.close.subscribe();
        let open = self.metrics.open_upgrades.clone();
        self.tracker.spawn(async move {
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(error) => return tracing::debug!(%error, "upgrade did not complete"),
            };
            open.inc();
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            tokio::select! {
                result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "tunnel ended with an error");
                    }
                }
                _ = close.wait_for(|closed| *closed) => tracing::debug!("tunnel closed by shutdown"),
                _ = async { match &end { Some(end) => end.ended().await, None => std::future::pending().await } } => {
                    tracing::debug!("tunnel closed by a reload");
                }
            }
            open.dec();
        });
    }

    /// Resolves once every tunnel has ended; no new ones are expected after this is called.
    pub async fn drained(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Closes every open tunnel.
    pub fn close_all(&self) {
        self.close.send_replace(true);
    }
}
