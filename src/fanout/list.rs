//! Merged lists: one consistent snapshot across namespaces, paged with Canopy's own continue
//! tokens, streamed out one namespace at a time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::StreamBody;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower::{Service, ServiceExt};

use super::{Answer, Failure, FanOut, call, first_forbidden, read_json};
use crate::body::{self, Body, BoxError};
use crate::status::Status;

/// Where the next page starts: namespace index, upstream continue token there (empty: the
/// namespace's start) and the snapshot's resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Token {
    n: usize,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    c: String,
    rv: String,
}

impl Token {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Result<Self, Status> {
        let invalid = || Status::bad_request("the continue token is not valid; start the list again");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
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
        let mut merge = Merge { fan, head: Some((head_tx, body)), chunks, written: 0 };
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
    /// Items or rows written so far.
    written: usize,
}

impl Merge {
    async fn run<S>(&mut self, inner: S) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        let limit: usize = self.fan.param("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let token = match self.fan.param("continue").filter(|c| !c.is_empty()) {
            Some(text) => Some(Token::decode(text)?),
            None => None,
        };
        // A consistent read (no resourceVersion) or an exact one pins every namespace to the
        // first answer's resourceVersion; "any" or "not older than" reads are passed on as asked.
        let client_rv = self.fan.param("resourceVersion").filter(|rv| !rv.is_empty()).map(str::to_owned);
        let client_match = self.fan.param("resourceVersionMatch").map(str::to_owned);
        let pin = client_rv.is_none() || client_match.as_deref() == Some("Exact");
        let base = self.fan.query_without(&["limit", "continue", "resourceVersion", "resourceVersionMatch"]);

        let (mut index, mut resume, mut snapshot) = match token {
            Some(t) => (t.n, Some(t.c).filter(|c| !c.is_empty()), Some(t.rv)),
            None => (0, None, None),
        };
        let mut remaining = limit;
        let mut refusals = Vec::new();
        let mut next = None;
        let mut lowest: Option<(u64, String)> = None;
        let mut ahead: VecDeque<Prefetched> = VecDeque::new();
        while index < self.fan.namespaces.len() {
            // Once every remaining request is known (whole lists pinned to one snapshot), the next
            // few are already on their way while this one is written out.
            if let (0, true, Some(rv)) = (limit, pin, &snapshot) {
                let mut query = base.clone();
                query.push(("resourceVersion".into(), rv.clone()));
                query.push(("resourceVersionMatch".into(), "Exact".into()));
                let mut next_index = ahead.back().map_or(index, |(i, _)| i + 1);
                while ahead.len() < AHEAD && next_index < self.fan.namespaces.len() {
                    let request = self.fan.request(&self.fan.namespaces[next_index], &query)?;
                    ahead.push_back((next_index, tokio::spawn(inner.clone().oneshot(request))));
                    next_index += 1;
                }
            }
            let mut query = base.clone();
            if let Some(c) = resume.take() {
                query.push(("continue".into(), c));
            } else if let (true, Some(rv)) = (pin, &snapshot) {
                query.push(("resourceVersion".into(), rv.clone()));
                query.push(("resourceVersionMatch".into(), "Exact".into()));
            } else if let Some(rv) = &client_rv {
                query.push(("resourceVersion".into(), rv.clone()));
                if let Some(m) = &client_match {
                    query.push(("resourceVersionMatch".into(), m.clone()));
                }
            }
            if limit > 0 {
                query.push(("limit".into(), remaining.to_string()));
            }
            let answer = match ahead.pop_front() {
                Some((i, handle)) if i == index => {
                    let response = handle.await.map_err(|e| Status::internal(e.to_string()))??;
                    Answer::of(response, &self.fan.namespaces[index])
                }
                _ => call(inner.clone(), &self.fan, &self.fan.namespaces[index], &query).await?,
            };
            let page = match answer {
                Answer::Ok(response) => read_json(response, &self.fan.translation).await?,
                Answer::Refused(response) => {
                    refusals.push(response);
                    index += 1;
                    continue;
                }
                Answer::Failed(response) => return self.answer_with(response).await,
            };
            let rv = page.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_owned();
            if snapshot.is_none() {
                snapshot = Some(rv.clone());
            }
            if let Ok(n) = rv.parse::<u64>()
                && lowest.as_ref().is_none_or(|(l, _)| n < *l)
            {
                lowest = Some((n, rv));
            }
            let count = self.write_page(&page).await?;
            if limit > 0 {
                remaining = remaining.saturating_sub(count);
                let snapshot = snapshot.clone().unwrap_or_default();
                if let Some(c) = page.pointer("/metadata/continue").and_then(Value::as_str).filter(|c| !c.is_empty()) {
                    next = Some(Token { n: index, c: c.to_owned(), rv: snapshot });
                    break;
                }
                if remaining == 0 {
                    if index + 1 < self.fan.namespaces.len() {
                        next = Some(Token { n: index + 1, c: String::new(), rv: snapshot });
                    }
                    break;
                }
            }
            index += 1;
        }
        if self.head.is_some() {
            if let Some(refusal) = first_forbidden(refusals) {
                return self.answer_with(refusal).await;
            }
            self.write_head(&empty_list(&self.fan))?;
        }
        let rv = if pin { snapshot } else { lowest.map(|(_, rv)| rv).or(snapshot) };
        let mut metadata = json!({ "resourceVersion": rv.unwrap_or_default() });
        if let Some(next) = next {
            metadata["continue"] = Value::String(next.encode());
        }
        self.send(format!("],\"metadata\":{metadata}}}").into_bytes()).await
    }

    /// Writes the head (first time) and the items or rows of one namespace; returns their count.
    async fn write_page(&mut self, page: &Value) -> Result<usize, Status> {
        self.write_head(page)?;
        let key = if page.get("rows").is_some() { "rows" } else { "items" };
        let items = page.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut out = Vec::new();
        for item in items {
            if self.written > 0 || !out.is_empty() {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, item).map_err(|e| Status::internal(e.to_string()))?;
        }
        self.written += items.len();
        if !out.is_empty() {
            self.send(out).await?;
        }
        Ok(items.len())
    }

    /// Sends the response head and the document's opening, taken from `page`.
    fn write_head(&mut self, page: &Value) -> Result<(), Status> {
        let Some((head, body)) = self.head.take() else { return Ok(()) };
        let mut opening = Vec::from(&b"{"[..]);
        for key in ["kind", "apiVersion", "columnDefinitions"] {
            if let Some(value) = page.get(key) {
                opening.extend_from_slice(format!("{}:{value},", Value::String(key.into())).as_bytes());
            }
        }
        let key = if page.get("rows").is_some() || page.get("columnDefinitions").is_some() { "rows" } else { "items" };
        opening.extend_from_slice(format!("\"{key}\":[").as_bytes());
        // The opening is queued before the head is released, so it is the body's first chunk.
        self.chunks.try_send(Ok(Bytes::from(opening))).map_err(|_| Status::internal("list merge channel full"))?;
        let mut response = Response::new(body);
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let _ = head.send(Ok(response));
        Ok(())
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), Status> {
        // A closed channel means the client left; stopping quietly is all there is to do.
        let _ = self.chunks.send(Ok(Bytes::from(bytes))).await;
        Ok(())
    }

    /// Answers with an upstream failure if nothing was sent yet; otherwise breaks the stream.
    async fn answer_with(&mut self, failure: Failure) -> Result<(), Status> {
        match self.head.take() {
            Some((head, _)) => {
                let _ = head.send(Ok(self.fan.relay(failure)));
            }
            None => {
                let code = failure.response.status();
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
                let _ = self.chunks.send(Err(status.message.into())).await;
            }
        }
    }
}

/// The opening of an empty answer when no namespace answered: a Table if one was asked for.
fn empty_list(fan: &FanOut) -> Value {
    let accept = fan.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("as=Table") {
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "columnDefinitions": [], "rows": []})
    } else {
        json!({"kind": "List", "apiVersion": "v1", "items": []})
    }
}
