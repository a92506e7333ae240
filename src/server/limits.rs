//! What one client connection may hold (`server.limits`): a slot among `maxConnections` shared by
//! every serving thread, a deadline to send each request's headers, a header size, HTTP/2
//! streams, and an idle timeout — a connection with no request in flight for that long (or with
//! no first request within the header timeout) is closed gracefully (HTTP/2 GOAWAY, HTTP/1.1
//! close), and HTTP/2 peers that stop answering pings are dropped. Slow or idle clients so give their slot back to the others.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::config::LimitsConfig;

/// Longest an HTTP/2 peer may take to answer a keep-alive ping.
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The limits, with the connection slots every serving thread takes from.
#[derive(Clone)]
pub struct ConnectionLimits {
    config: LimitsConfig,
    slots: Arc<Semaphore>,
    open: Gauge,
}

/// A connection's slot, given back (and the open-connection gauge lowered) when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl ConnectionLimits {
    /// Limits as configured; `open` counts the connections holding a slot.
    pub fn new(config: &LimitsConfig, open: Gauge) -> Self {
        Self { config: *config, slots: Arc::new(Semaphore::new(config.max_connections)), open }
    }

    /// Waits until a connection may be accepted.
    pub(super) async fn slot(&self) -> Slot {
        // The semaphore is never closed, so acquiring only waits.
        let permit = loop {
            if let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await {
                break permit;
            }
        };
        self.open.inc();
        Slot { _permit: permit, open: self.open.clone() }
    }

    /// How long a new connection may take to start its first request, and how long a
    /// connection may then go without a request in flight.
    pub(super) fn idle_timeouts(&self) -> (Duration, Duration) {
        (self.config.header_read_timeout, self.config.idle_timeout)
    }

    /// A connection builder for HTTP/1.1 and HTTP/2 within the limits.
    pub(super) fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .max_buf_size(self.config.max_header_bytes as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            // Many watches share one HTTP/2 connection (kubectl, client-go informers).
            .max_concurrent_streams(self.config.http2_max_concurrent_streams)
            .max_header_list_size(self.config.max_header_bytes)
            .keep_alive_interval(self.config.idle_timeout)
            .keep_alive_timeout(PING_TIMEOUT.min(self.config.idle_timeout));
        builder
    }
}

/// Counts a connection's requests in flight: one [`InFlight`] per request, from its headers
/// until its response body is dropped.
#[derive(Clone)]
pub(super) struct Activity(Arc<watch::Sender<usize>>);

/// One request in flight; see [`Activity`].
pub(super) struct InFlight(Arc<watch::Sender<usize>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Activity {
    pub fn new() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn start(&self) -> InFlight {
        self.0.send_modify(|n| *n += 1);
        InFlight(Arc::clone(&self.0))
    }

    /// Resolves once no request has been in flight for `timeout`, or none has started within
    /// `first`. (Before its first request a connection is still being read to tell HTTP/1.1 from
    /// HTTP/2, where hyper's header timeout does not run yet.)
    pub async fn idle_for(&self, first: Duration, timeout: Duration) {
        let mut count = self.0.subscribe();
        let mut wait = first;
        loop {
            // The sender lives in `self`, so waiting cannot fail.
            let _ = count.wait_for(|n| *n == 0).await;
            if tokio::time::timeout(wait, count.changed()).await.is_err() {
                return;
            }
            wait = timeout;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_means_nothing_in_flight_for_the_whole_timeout() {
        let (first, timeout) = (Duration::from_secs(3), Duration::from_secs(10));
        // A connection that never starts a request goes after `first`.
        let silent = Activity::new();
        let started = tokio::time::Instant::now();
        silent.idle_for(first, timeout).await;
        assert_eq!(started.elapsed(), first);
        let activity = Activity::new();
        let request = activity.start();
        // A request in flight for longer than the timeout keeps the connection.
        assert!(tokio::time::timeout(Duration::from_secs(30), activity.idle_for(first, timeout)).await.is_err());
        drop(request);
        let started = tokio::time::Instant::now();
        let watcher = activity.clone();
        let idle = tokio::spawn(async move { watcher.idle_for(timeout, timeout).await });
        tokio::time::sleep(Duration::from_secs(6)).await;
        // A request 6 s into the quiet restarts the count.
        drop(activity.start());
        idle.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(16));
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_bounded_and_given_back() {
        let open = Gauge::default();
        let config = crate::config::Config::from_str(
            std::path::Path::new("c.yaml"),
            "server:\n  limits:\n    maxConnections: 2\n",
        )
        .unwrap()
        .server
        .limits;
        let limits = ConnectionLimits::new(&config, open.clone());
        let (first, _second) = (limits.slot().await, limits.slot().await);
        assert_eq!(open.get(), 2);
        assert!(tokio::time::timeout(Duration::from_millis(50), limits.slot()).await.is_err());
        drop(first);
        let _third = limits.slot().await;
        assert_eq!(open.get(), 2);
    }
}
