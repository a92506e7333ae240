//! Merged lists: one consistent snapshot across namespaces, paged with Canopy's own continue
//! tokens, streamed out item by item. Each namespace's page is translated as it arrives
//! ([`super::page`]) and its items written into the answer at once, so memory holds one item and
//! one output chunk, never a page; output leaves in chunks of about 64 KB, or sooner when
//! upstream pauses. The next few namespaces are requested while one is written ([`AHEAD`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyStream, StreamBody};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower::{Service, ServiceExt};

use super::page::{Merged, Page, empty_list, replay_whole};
use super::{Answer, Failure, FanOut, count, first_forbidden};
use crate::body::{self, Body, BoxError};
use crate::status::Status;
use crate::transform::list::{FLUSH, ListError, ListTranslator};
use crate::transform::{MAX_EVENT, MAX_RESPONSE_BODY};

/// Where the next page starts: namespace index, upstream continue token there (empty: the
/// namespace's start) and the snapshot's resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Token {
    pub(super) n: usize,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) c: String,
    pub(super) rv: String,
}

impl Token {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(super) fn decode(text: &str) -> Result<Self, Status> {
        let invalid = || Status::bad_request("the continue token is not valid; start the list again");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
    }
}

/// What the caller asked of the whole list, and the query every namespace's request starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// Items per answer; 0: all.
    limit: usize,
    /// Every namespace is read at the first answer's resourceVersion.
    pin: bool,
    client_rv: Option<String>,
    client_match: Option<String>,
    /// The caller's query without the members the merge decides.
    base: Vec<(String, String)>,
}

impl Plan {
    fn of(fan: &FanOut) -> Self {
        let client_rv = fan.param("resourceVersion").filter(|rv| !rv.is_empty()).map(str::to_owned);
        let client_match = fan.param("resourceVersionMatch").map(str::to_owned);
        Plan {
            limit: fan.param("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
            // A consistent read (no resourceVersion) or an exact one pins every namespace to the
            // first answer's resourceVersion; "any" or "not older than" reads are passed on as asked.
            pin: client_rv.is_none() || client_match.as_deref() == Some("Exact"),
            client_rv,
            client_match,
            base: fan.query_without(&["limit", "continue", "resourceVersion", "resourceVersionMatch"]),
        }
    }

    /// The query of one namespace's request: resumed at an upstream continue token, else read at
    /// the snapshot or as the caller asked; at most `remaining` items when limited.
    fn query(&self, resume: Option<String>, snapshot: Option<&str>, remaining: usize) -> Vec<(String, String)> {
        let mut query = self.base.clone();
        if let Some(c) = resume {
            query.push(("continue".into(), c));
        } else if let (true, Some(rv)) = (self.pin, snapshot) {
            query.push(("resourceVersion".into(), rv.to_owned()));
            query.push(("resourceVersionMatch".into(), "Exact".into()));
        } else if let Some(rv) = &self.client_rv {
            query.push(("resourceVersion".into(), rv.clone()));
            if let Some(m) = &self.client_match {
                query.push(("resourceVersionMatch".into(), m.clone()));
            }
        }
        if self.limit > 0 {
            query.push(("limit".into(), remaining.to_string()));
        }
        query
    }

    /// The snapshot every remaining request is read at, once they are all known in advance
    /// (whole lists pinned to one snapshot), so they can be made ahead.
    fn ahead_at<'a>(&self, snapshot: Option<&'a str>) -> Option<&'a str> {
        snapshot.filter(|_| self.limit == 0 && self.pin)
    }
}

/// The lowest numeric resourceVersion seen, and its text.
fn lowest(lowest: Option<(u64, String)>, rv: &str) -> Option<(u64, String)> {
    match rv.parse::<u64>() {
        Ok(n) if lowest.as_ref().is_none_or(|(l, _)| n < *l) => Some((n, rv.to_owned())),
        _ => lowest,
    }
}

/// Namespaces fetched ahead of the one being written.
const AHEAD: usize = 4;
/// A namespace's index and its request in flight.
type Prefetched = (usize, JoinHandle<Result<Response<Body>, Status>>);

type Chunks = mpsc::Sender<Result<Bytes, BoxError>>;
/// Where the response head goes once known, and the body it will carry.
type Head = (oneshot::Sender<Result<Response<Body>, Status>>, Body);

pub async fn serve<S>(fan: FanOut, inner: S) -> Result<Response<Body>, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    let (head_tx, head_rx) = oneshot::channel();
    let (chunks, rx) = mpsc::channel(4);
    let body = body::boxed(StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk: Result<Bytes, BoxError>| (chunk.map(http_body::Frame::data), rx))
    })));
    tokio::spawn(async move {
        let mut merge = Merge { fan, head: Some((head_tx, body)), chunks, merged: Merged::default() };
        if let Err(status) = merge.run(inner).await {
            merge.fail(status).await;
        }
    });
    head_rx.await.map_err(|_| Status::internal("the list merge ended without an answer"))?
}

/// The merge in progress: the response head goes out with the first namespace that answers.
struct Merge {
    fan: FanOut,
    head: Option<Head>,
    chunks: Chunks,
    /// The answer written so far and not yet sent.
    merged: Merged,
}

impl Merge {
    async fn run<S>(&mut self, inner: S) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        let plan = Plan::of(&self.fan);
        let token = match self.fan.param("continue").filter(|c| !c.is_empty()) {
            Some(text) => Some(Token::decode(text)?),
            None => None,
        };
        let (mut index, mut resume, mut snapshot) = match token {
            Some(t) => (t.n, Some(t.c).filter(|c| !c.is_empty()), Some(t.rv)),
            None => (0, None, None),
        };
        let mut remaining = plan.limit;
        let mut refusals = Vec::new();
        let mut next = None;
        let mut lowest_rv: Option<(u64, String)> = None;
        // Where a limited page stopped: the namespace, and upstream's count of its items after it.
        let mut stopped: Option<(usize, Option<u64>)> = None;
        let mut ahead: VecDeque<Prefetched> = VecDeque::new();
        while index < self.fan.namespaces.len() {
            if let Some(rv) = plan.ahead_at(snapshot.as_deref()) {
                self.prefetch(&inner, &mut ahead, index, &plan.query(None, Some(rv), 0))?;
            }
            let query = plan.query(resume.take(), snapshot.as_deref(), remaining);
            let page = match self.answer(inner.clone(), &mut ahead, index, &query).await? {
                Answer::Ok(response) => self.stream_page(response).await?,
                Answer::Refused(response) => {
                    refusals.push(response);
                    index += 1;
                    continue;
                }
                Answer::Failed(response) => return self.answer_with(response).await,
            };
            let snapshot = snapshot.get_or_insert_with(|| page.resource_version.clone()).clone();
            lowest_rv = lowest(lowest_rv, &page.resource_version);
            if plan.limit > 0 {
                remaining = remaining.saturating_sub(page.count);
                if !page.continue_token.is_empty() {
                    next = Some(Token { n: index, c: page.continue_token, rv: snapshot });
                    stopped = Some((index, page.remaining));
                    break;
                }
                if remaining == 0 {
                    if index + 1 < self.fan.namespaces.len() {
                        next = Some(Token { n: index + 1, c: String::new(), rv: snapshot });
                        stopped = Some((index, Some(0)));
                    }
                    break;
                }
            }
            index += 1;
        }
        if !self.merged.opened {
            if let Some(refusal) = first_forbidden(refusals) {
                return self.answer_with(refusal).await;
            }
            let accept = self.fan.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            let (members, key) = empty_list(accept);
            self.merged.open(&members, key);
            self.release_head();
        }
        let rv = if plan.pin { snapshot } else { lowest_rv.map(|(_, rv)| rv).or(snapshot) };
        let mut metadata = json!({ "resourceVersion": rv.unwrap_or_default() });
        if let (Some(next), Some((index, rest))) = (&next, stopped.filter(|_| plan.pin)) {
            // Counting asks upstream again: what is written goes out meanwhile.
            self.flush().await;
            if let Some(count) = count::remaining(&self.fan, inner, &plan.base, &next.rv, index, rest).await {
                metadata["remainingItemCount"] = count.into();
            }
        }
        if let Some(next) = next {
            metadata["continue"] = Value::String(next.encode());
        }
        self.merged.close(&metadata);
        self.flush().await;
        Ok(())
    }

    /// Requests the namespaces after `index` (and it, if not yet asked) with `query`, up to
    /// [`AHEAD`] in flight.
    fn prefetch<S>(
        &self,
        inner: &S,
        ahead: &mut VecDeque<Prefetched>,
        index: usize,
        query: &[(String, String)],
    ) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        let mut next_index = ahead.back().map_or(index, |(i, _)| i + 1);
        while ahead.len() < AHEAD && next_index < self.fan.namespaces.len() {
            let request = self.fan.request(&self.fan.namespaces[next_index], query)?;
            ahead.push_back((next_index, tokio::spawn(inner.clone().oneshot(request))));
            next_index += 1;
        }
        Ok(())
    }

    /// The answer of namespace `index`: the one fetched ahead, or asked now with `query`.
    async fn answer<S>(
        &mut self,
        inner: S,
        ahead: &mut VecDeque<Prefetched>,
        index: usize,
        query: &[(String, String)],
    ) -> Result<Answer, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        let namespace = self.fan.namespaces[index].clone();
        let response = match ahead.pop_front() {
            Some((i, handle)) if i == index => {
                self.when_ready(handle).await.map_err(|e| Status::internal(e.to_string()))??
            }
            _ => {
                let request = self.fan.request(&namespace, query)?;
                self.when_ready(inner.oneshot(request)).await?
            }
        };
        Ok(Answer::of(response, &namespace))
    }

    /// Writes one namespace's page into the answer as it streams; returns what the page said.
    async fn stream_page(&mut self, response: Response<Body>) -> Result<Page, Status> {
        let mut list = ListTranslator::new(self.fan.translation.clone(), MAX_EVENT, MAX_RESPONSE_BODY);
        let mut frames = BodyStream::new(response.into_body());
        let mut page = Page::default();
        while let Some(frame) = self.when_ready(frames.next()).await {
            let frame = frame.map_err(|e| Status::bad_gateway(format!("cannot read the upstream answer: {e}")))?;
            let Ok(data) = frame.into_data() else { continue };
            let merged = &mut self.merged;
            list.push(&data, &mut |part| merged.part(&mut page, part)).map_err(untranslatable)?;
            self.release_head();
            if self.merged.out.len() >= FLUSH {
                self.flush().await;
            }
        }
        let merged = &mut self.merged;
        list.finish(&mut |part| merged.part(&mut page, part)).map_err(untranslatable)?;
        if !page.listed {
            // Not streamed: a list gathered whole is written as if it had been; anything else is
            // not an answer to a list.
            let whole = page.whole.take().unwrap_or_default();
            replay_whole(&whole, &mut |part| merged.part(&mut page, part))?;
        }
        self.release_head();
        Ok(page)
    }

    /// `future`'s output; when it is not ready at once, what is written goes out meanwhile.
    async fn when_ready<F: Future>(&mut self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        if let Some(output) = future.as_mut().now_or_never() {
            return output;
        }
        self.flush().await;
        future.await
    }

    /// Sends the response head once the answer's opening is written.
    fn release_head(&mut self) {
        if !self.merged.opened {
            return;
        }
        let Some((head, body)) = self.head.take() else { return };
        let mut response = Response::new(body);
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let _ = head.send(Ok(response));
    }

    /// Sends what is written.
    async fn flush(&mut self) {
        if self.merged.out.is_empty() || self.head.is_some() {
            return;
        }
        let out = std::mem::take(&mut self.merged.out);
        // A closed channel means the client left; stopping quietly is all there is to do.
        let _ = self.chunks.send(Ok(Bytes::from(out))).await;
    }

    /// Answers with an upstream failure if nothing was sent yet; otherwise breaks the stream.
    async fn answer_with(&mut self, failure: Failure) -> Result<(), Status> {
        match self.head.take() {
            Some((head, _)) => {
                let _ = head.send(Ok(self.fan.relay(failure)));
            }
            None => {
                let code = failure.response.status();
                self.flush().await;
                let _ = self.chunks.send(Err(format!("a namespace failed mid-list with {code}").into())).await;
            }
        }
        Ok(())
    }

    async fn fail(&mut self, status: Status) {
        match self.head.take() {
            Some((head, _)) => {
                let _ = head.send(Err(status));
            }
            None => {
                self.flush().await;
                let _ = self.chunks.send(Err(status.message.into())).await;
            }
        }
    }
}

/// A page that cannot be translated: upstream's fault.
fn untranslatable(error: ListError) -> Status {
    Status::bad_gateway(format!("cannot translate the upstream answer: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(limit: usize, pin: bool, client_rv: Option<&str>) -> Plan {
        Plan {
            limit,
            pin,
            client_rv: client_rv.map(str::to_owned),
            client_match: client_rv.map(|_| "NotOlderThan".to_owned()),
            base: vec![("labelSelector".into(), "app=web".into())],
        }
    }

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn queries_resume_then_pin_then_pass_the_callers_version() {
        let pinned = plan(2, true, None);
        assert_eq!(
            pinned.query(Some("up".into()), Some("9"), 2),
            pairs(&[("labelSelector", "app=web"), ("continue", "up"), ("limit", "2")])
        );
        assert_eq!(
            pinned.query(None, Some("9"), 1),
            pairs(&[
                ("labelSelector", "app=web"),
                ("resourceVersion", "9"),
                ("resourceVersionMatch", "Exact"),
                ("limit", "1")
            ])
        );
        assert_eq!(pinned.query(None, None, 2), pairs(&[("labelSelector", "app=web"), ("limit", "2")]));
        let loose = plan(0, false, Some("5"));
        assert_eq!(
            loose.query(None, Some("9"), 0),
            pairs(&[("labelSelector", "app=web"), ("resourceVersion", "5"), ("resourceVersionMatch", "NotOlderThan")])
        );
    }

    #[test]
    fn only_whole_pinned_lists_are_fetched_ahead() {
        assert_eq!(plan(0, true, None).ahead_at(Some("9")), Some("9"));
        assert_eq!(plan(0, true, None).ahead_at(None), None);
        assert_eq!(plan(5, true, None).ahead_at(Some("9")), None);
        assert_eq!(plan(0, false, Some("5")).ahead_at(Some("9")), None);
    }

    #[test]
    fn the_lowest_numeric_version_is_kept() {
        let seen = ["12", "", "9", "x", "10"].iter().fold(None, |l, rv| lowest(l, rv));
        assert_eq!(seen, Some((9, "9".to_owned())));
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = Token { n: 3, c: "upstream".into(), rv: "42".into() };
        assert_eq!(Token::decode(&token.encode()).expect("decodes"), token);
        let fresh = Token { n: 1, c: String::new(), rv: "42".into() };
        assert_eq!(Token::decode(&fresh.encode()).expect("decodes"), fresh);
        assert_eq!(Token::decode("garbage").expect_err("refused").code, http::StatusCode::BAD_REQUEST);
    }
}
