//! Tells an HTTP/2 stream broken by an unanswered keep-alive ping from one broken otherwise.
//! When a ping times out hyper drops the connection, and every stream on it fails with the
//! same broken-pipe error as when the apiserver closes it; only the task driving the connection
//! learns that the ping timed out. A body whose connection broke waits for that task's verdict
//! (it follows at once: the connection is gone) and then fails with [`PingTimedOut`], so a watch
//! on a paused apiserver ends with a `504 Timeout` `ERROR` event, not a 503.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::watch;

use super::timeout::is_timeout;
use crate::body::{Body, BoxError};

/// How an HTTP/2 connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Closed or broken: the apiserver went away, or the network failed.
    Closed,
    /// Its keep-alive ping went unanswered: the apiserver stopped answering.
    PingTimedOut,
}

impl Ended {
    /// How a connection whose driving task finished with `outcome` ended.
    pub fn of(outcome: Result<(), &hyper::Error>) -> Self {
        match outcome {
            Err(error) if is_timeout(error) => Self::PingTimedOut,
            _ => Self::Closed,
        }
    }
}

/// A stream failed because its connection's keep-alive ping went unanswered.
#[derive(Debug, thiserror::Error)]
#[error("the apiserver did not answer a keep-alive ping in time")]
pub struct PingTimedOut(#[source] pub BoxError);

/// Where a connection's driving task tells how it ended, and its streams learn it.
pub fn verdict() -> (watch::Sender<Option<Ended>>, watch::Receiver<Option<Ended>>) {
    watch::channel(None)
}

/// The connection's verdict, awaited.
type Awaited = Pin<Box<dyn Future<Output = Ended> + Send>>;

/// A response body of a stream on a connection whose end `verdict` tells.
pub struct ConnectionBody {
    inner: Body,
    verdict: watch::Receiver<Option<Ended>>,
    /// The error the stream failed with, while the connection's verdict is awaited.
    failed: Option<(BoxError, Awaited)>,
}

impl ConnectionBody {
    pub fn new(inner: Body, verdict: watch::Receiver<Option<Ended>>) -> Self {
        Self { inner, verdict, failed: None }
    }
}

impl http_body::Body for ConnectionBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some((_, ended)) = &mut this.failed {
                let ended = ready!(ended.as_mut().poll(cx));
                let Some((error, _)) = this.failed.take() else { continue };
                return Poll::Ready(Some(Err(match ended {
                    Ended::PingTimedOut => Box::new(PingTimedOut(error)),
                    Ended::Closed => error,
                })));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Err(error)) if connection_broke(&*error) => {
                    let mut verdict = this.verdict.clone();
                    // A connection whose task is gone without a word is taken as closed.
                    let ended = async move { verdict.wait_for(Option::is_some).await.ok().and_then(|e| *e) };
                    this.failed = Some((error, Box::pin(async move { ended.await.unwrap_or(Ended::Closed) })));
                }
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none() && self.inner.is_end_stream()
    }
}

/// Whether `error` is the stream's connection breaking (an I/O error, which h2 gives every
/// stream of a connection that is gone), as opposed to this stream alone being reset, after
/// which the connection lives on and gives no verdict.
fn connection_broke(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.downcast_ref::<h2::Error>().is_some_and(h2::Error::is_io) || error.is::<std::io::Error>() {
            return true;
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use http_body_util::BodyExt;

    use super::*;
    use crate::body;

    fn failing_with(error: BoxError) -> Body {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![Ok(Frame::data(Bytes::from_static(b"a\n"))), Err(error)];
        body::boxed(http_body_util::StreamBody::new(stream::iter(frames)))
    }

    fn broken_pipe() -> BoxError {
        Box::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    #[tokio::test]
    async fn a_stream_whose_connection_pinged_in_vain_fails_with_a_timeout() {
        let (tell, verdict) = verdict();
        let body = ConnectionBody::new(failing_with(broken_pipe()), verdict);
        let reading = tokio::spawn(async move { body.collect().await.map(|_| ()) });
        tokio::task::yield_now().await;
        tell.send_replace(Some(Ended::PingTimedOut));
        let error = reading.await.unwrap().unwrap_err();
        assert!(is_timeout(&*error), "{error}");
    }

    #[tokio::test]
    async fn a_stream_whose_connection_closed_fails_as_it_did() {
        let (tell, verdict) = verdict();
        tell.send_replace(Some(Ended::Closed));
        let error = ConnectionBody::new(failing_with(broken_pipe()), verdict).collect().await.unwrap_err();
        assert!(!is_timeout(&*error), "{error}");
        // A connection whose task went away without a verdict counts as closed.
        let (tell, verdict) = super::verdict();
        drop(tell);
        let error = ConnectionBody::new(failing_with(broken_pipe()), verdict).collect().await.unwrap_err();
        assert!(!is_timeout(&*error), "{error}");
    }

    #[tokio::test]
    async fn a_stream_reset_alone_fails_without_waiting_for_its_connection() {
        let (_tell, verdict) = verdict();
        let error = ConnectionBody::new(failing_with("reset".into()), verdict).collect().await.unwrap_err();
        assert_eq!(error.to_string(), "reset");
    }
}
