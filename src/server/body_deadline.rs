//! The time a client has to send a request body: from its headers, `bodyReadTimeoutSeconds`
//! for the whole body, so a client trickling a byte now and then cannot hold its share of the
//! body budget (`super::body_limit`) for ever. Past it the body fails with [`BodyTimedOut`],
//! which readers answer with `408` and a `Status`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use crate::body::{Body, BoxError};
use crate::status::Status;

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub struct BodyTimedOut(pub Duration);

impl BodyTimedOut {
    /// What the client is answered.
    pub fn status(&self) -> Status {
        Status::request_timeout(self.to_string())
    }
}

/// `body`, failing once `limit` has passed before its end.
pub fn with_deadline(body: Body, limit: Duration) -> Body {
    Body::new(Deadline { inner: body, limit, sleep: Box::pin(tokio::time::sleep(limit)) })
}

struct Deadline {
    inner: Body,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::body;

    /// A body of `chunks` bytes, one every `every`.
    fn trickle(chunks: usize, every: Duration) -> Body {
        let frames = futures_util::stream::unfold(0, move |n| async move {
            (n < chunks).then_some(())?;
            tokio::time::sleep(every).await;
            Some((Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"x"))), n + 1))
        });
        body::boxed(StreamBody::new(frames))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_takes_too_long_fails_with_a_timeout() {
        // A byte every 5 s never idles long, but the whole body takes 50 s.
        let error =
            with_deadline(trickle(10, Duration::from_secs(5)), Duration::from_secs(30)).collect().await.unwrap_err();
        let status = error.downcast_ref::<BodyTimedOut>().expect("a timeout").status();
        assert_eq!((status.code.as_u16(), status.reason), (408, "Timeout"));
        let body = with_deadline(trickle(5, Duration::from_secs(5)), Duration::from_secs(30)).collect().await;
        assert_eq!(body.unwrap().to_bytes(), "xxxxx");
    }
}
