//! Watches over HTTP/1.1 on an apiserver that stopped answering. HTTP/1.1 has no pings, and a
//! paused process still has its kernel acknowledge TCP, so such a watch would wait for ever.
//! While HTTP/1.1 watches are open, at most once per `upstream.keepAliveIntervalSeconds`, one
//! prober task per client asks the apiserver a cheap question (`GET /version`, with Canopy's own
//! credentials) and gives it `upstream.keepAliveTimeoutSeconds` to answer. When it does not, the
//! HTTP/1.1 watches that received nothing while it waited fail with [`Unanswered`], which ends
//! them with a `504 Timeout` `ERROR` event so that informers list again. No timer or task per
//! watch: each costs an entry in a table and a few atomics. HTTP/2 watches have the connection's
//! own pings (`super::ping_timeout`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::{Request, Response, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::watch;
use tower::{Service, ServiceExt};

use super::UpstreamService;
use super::client::is_watch;
use super::timeout::is_timeout;
use crate::body::{self, Body, BoxError};
use crate::config::UpstreamTimeouts;

/// The apiserver left the liveness probe unanswered, and this watch heard nothing meanwhile.
#[derive(Debug, thiserror::Error)]
#[error("the apiserver did not answer a liveness probe within {} s", .0.as_secs())]
pub struct Unanswered(pub Duration);

/// Ends HTTP/1.1 watches whose apiserver stopped answering; see the module doc.
#[derive(Clone)]
pub struct Liveness {
    inner: UpstreamService,
    shared: Arc<Shared>,
}

struct Shared {
    /// Where probes go: the same client, credentials and connection pool as the watches.
    probe: UpstreamService,
    timeouts: UpstreamTimeouts,
    watches: Mutex<HashMap<u64, Arc<Watch>>>,
    next: AtomicU64,
    /// Bumped when a watch opens, to wake the prober from waiting for one.
    opened: watch::Sender<()>,
    prober_started: AtomicBool,
}

/// One open HTTP/1.1 watch, as the prober sees it.
#[derive(Default)]
struct Watch {
    /// Something arrived since the current probe was sent.
    heard: AtomicBool,
    /// The probe went unanswered and nothing arrived: the watch is to end.
    unanswered: AtomicBool,
    waker: AtomicWaker,
}

impl Liveness {
    pub fn new(inner: UpstreamService, timeouts: UpstreamTimeouts) -> Self {
        let shared = Shared {
            probe: inner.clone(),
            timeouts,
            watches: Mutex::default(),
            next: AtomicU64::new(0),
            opened: watch::Sender::new(()),
            prober_started: AtomicBool::new(false),
        };
        Self { inner, shared: Arc::new(shared) }
    }
}

impl Service<Request<Body>> for Liveness {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let watch = is_watch(request.method(), request.uri());
        let answer = self.inner.call(request);
        if !watch {
            return answer;
        }
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let response = answer.await?;
            if response.version() != Version::HTTP_11 || !response.status().is_success() {
                return Ok(response);
            }
            Ok(response.map(|body| body::boxed(Shared::watch(shared, body))))
        })
    }
}

impl Shared {
    /// `body` of an HTTP/1.1 watch, watched from now on; starts the prober on the first one.
    fn watch(shared: Arc<Self>, inner: Body) -> Watched {
        // Its answer just arrived: it counts as heard in a probe already under way.
        let watch = Arc::new(Watch { heard: AtomicBool::new(true), ..Watch::default() });
        let key = shared.next.fetch_add(1, Ordering::Relaxed);
        shared.watches.lock().unwrap_or_else(PoisonError::into_inner).insert(key, Arc::clone(&watch));
        shared.opened.send_replace(());
        if !shared.prober_started.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(probe(Arc::downgrade(&shared), shared.opened.subscribe()))),
                Err(_) => tracing::warn!("no runtime to probe the apiserver's liveness on"),
            }
        }
        Watched { inner, watch, key, shared, done: false }
    }

    fn any_open(&self) -> bool {
        !self.watches.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Marks every open watch as not heard from; whether there are any.
    fn probe_begins(&self) -> bool {
        let watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        for watch in watches.values() {
            watch.heard.store(false, Ordering::Release);
        }
        !watches.is_empty()
    }

    /// Ends the watches that heard nothing since the probe was sent; how many.
    fn probe_unanswered(&self) -> usize {
        let watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ended = 0;
        for watch in watches.values().filter(|watch| !watch.heard.load(Ordering::Acquire)) {
            watch.unanswered.store(true, Ordering::Release);
            watch.waker.wake();
            ended += 1;
        }
        ended
    }
}

/// The prober: while watches are open, one probe per keep-alive interval. Ends when the client
/// and all its watches are gone.
async fn probe(shared: Weak<Shared>, mut opened: watch::Receiver<()>) {
    loop {
        loop {
            opened.borrow_and_update();
            match shared.upgrade() {
                Some(shared) if shared.any_open() => break,
                Some(_) => {}
                None => return,
            }
            if opened.changed().await.is_err() {
                return;
            }
        }
        let Some(interval) = shared.upgrade().map(|shared| shared.timeouts.keep_alive_interval) else { return };
        tokio::time::sleep(interval).await;
        let Some(shared) = shared.upgrade() else { return };
        if !shared.probe_begins() {
            continue;
        }
        let limit = shared.timeouts.keep_alive_timeout;
        let version = Request::get("/version").body(body::empty());
        let asked = async {
            let response = shared.probe.clone().oneshot(version.map_err(BoxError::from)?).await?;
            response.into_body().collect().await.map(drop)
        };
        let answered = match tokio::time::timeout(limit, asked).await {
            Ok(Ok(())) => true,
            // An error is an answer (refused, reset: the watches learn it on their own
            // connections), unless it is the apiserver not answering in time.
            Ok(Err(error)) => !is_timeout(&*error),
            Err(_) => false,
        };
        if !answered {
            let ended = shared.probe_unanswered();
            tracing::warn!(
                ended,
                "the apiserver did not answer a liveness probe; HTTP/1.1 watches that heard nothing end"
            );
        }
    }
}

/// The body of an open HTTP/1.1 watch, which fails with [`Unanswered`] when the prober says so.
struct Watched {
    inner: Body,
    watch: Arc<Watch>,
    key: u64,
    shared: Arc<Shared>,
    done: bool,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        self.watch.waker.register(cx.waker());
        if self.watch.unanswered.load(Ordering::Acquire) {
            self.done = true;
            let waited = self.shared.timeouts.keep_alive_timeout;
            return Poll::Ready(Some(Err(Box::new(Unanswered(waited)))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.watch.heard.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.shared.watches.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use futures_util::stream;
    use http_body_util::StreamBody;
    use tokio::sync::mpsc;
    use tower::util::BoxCloneSyncService;

    use super::*;
    use crate::upstream::watch_end::end_with_error_event;

    /// An apiserver whose watches answer over `version` with the events sent on the returned
    /// channel, whose `/version` answers while `answering` is set; counts the probes.
    struct Apiserver {
        answering: Arc<AtomicBool>,
        probes: Arc<AtomicUsize>,
        liveness: Liveness,
    }

    fn apiserver(version: Version) -> (Apiserver, mpsc::Sender<Bytes>) {
        let (answering, probes) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
        let (send, events) = mpsc::channel::<Bytes>(8);
        let events = Arc::new(Mutex::new(Some(events)));
        let (answers, counted) = (Arc::clone(&answering), Arc::clone(&probes));
        let service = tower::service_fn(move |request: Request<Body>| {
            let (answers, counted, events) = (Arc::clone(&answers), Arc::clone(&counted), Arc::clone(&events));
            async move {
                if request.uri().path() == "/version" {
                    counted.fetch_add(1, Ordering::SeqCst);
                    if !answers.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    return Ok::<_, BoxError>(Response::new(body::full("{}")));
                }
                let mut events = events.lock().unwrap().take().expect("one watch");
                let frames = stream::poll_fn(move |cx| {
                    events.poll_recv(cx).map(|e| e.map(|e| Ok::<_, BoxError>(Frame::data(e))))
                });
                let mut response = Response::new(body::boxed(StreamBody::new(frames)));
                *response.version_mut() = version;
                response.headers_mut().insert(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
                Ok(response)
            }
        });
        let timeouts = UpstreamTimeouts {
            keep_alive_interval: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(10),
            ..UpstreamTimeouts::default()
        };
        let liveness = Liveness::new(BoxCloneSyncService::new(service), timeouts);
        (Apiserver { answering, probes, liveness }, send)
    }

    /// Opens a watch and reads it to its end in a task; returns its text.
    async fn open_watch(apiserver: &Apiserver) -> tokio::task::JoinHandle<String> {
        open_watch_at(apiserver, "/api/v1/pods?watch=1").await
    }

    async fn open_watch_at(apiserver: &Apiserver, uri: &str) -> tokio::task::JoinHandle<String> {
        let request = Request::get(uri).body(body::empty()).unwrap();
        let response = apiserver.liveness.clone().oneshot(request).await.unwrap();
        let (parts, incoming) = response.into_parts();
        let body = end_with_error_event(&parts.headers, incoming);
        tokio::spawn(async move { String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap() })
    }

    fn error_code(text: &str) -> Option<u64> {
        let event: serde_json::Value = serde_json::from_str(text.lines().last()?).ok()?;
        (event["type"] == "ERROR").then(|| event["object"]["code"].as_u64()).flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn an_http1_watch_on_an_apiserver_that_stopped_answering_ends_with_a_504_error_event() {
        let (apiserver, events) = apiserver(Version::HTTP_11);
        let watch = open_watch(&apiserver).await;
        events.send(Bytes::from_static(b"{\"type\":\"ADDED\"}\n")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(95)).await;
        assert!(!watch.is_finished(), "answered probes leave the watch open");
        assert_eq!(apiserver.probes.load(Ordering::SeqCst), 3, "one probe per interval");
        apiserver.answering.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(30 + 10)).await;
        let text = watch.await.unwrap();
        assert_eq!(text.lines().next(), Some("{\"type\":\"ADDED\"}"));
        assert_eq!(error_code(&text), Some(504), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_on_the_old_watch_path_is_guarded_by_the_prober() {
        for path in ["/api/v1/watch/namespaces/a/pods", "/apis/apps/v1/watch/deployments"] {
            let (apiserver, _events) = apiserver(Version::HTTP_11);
            let watch = open_watch_at(&apiserver, path).await;
            apiserver.answering.store(false, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(30 + 10 + 1)).await;
            assert_eq!(apiserver.probes.load(Ordering::SeqCst), 1, "{path}");
            assert_eq!(error_code(&watch.await.unwrap()), Some(504), "{path}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_hears_something_while_the_probe_waits_goes_on() {
        let (apiserver, events) = apiserver(Version::HTTP_11);
        apiserver.answering.store(false, Ordering::SeqCst);
        let watch = open_watch(&apiserver).await;
        tokio::time::sleep(Duration::from_secs(35)).await;
        events.send(Bytes::from_static(b"{\"type\":\"ADDED\"}\n")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!watch.is_finished(), "it heard something while the probe waited");
        // The next probe goes unanswered too, and this time the watch heard nothing.
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert_eq!(error_code(&watch.await.unwrap()), Some(504));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_watches_and_closed_ones_send_no_probes() {
        let (http2, _events) = apiserver(Version::HTTP_2);
        let watch = open_watch(&http2).await;
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(http2.probes.load(Ordering::SeqCst), 0);
        watch.abort();

        let (http1, events) = apiserver(Version::HTTP_11);
        let watch = open_watch(&http1).await;
        drop(events);
        watch.await.unwrap();
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(http1.probes.load(Ordering::SeqCst), 0, "no watch was open for a whole interval");
        assert!(!http1.liveness.shared.any_open());
    }
}
