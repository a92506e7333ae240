//! Bodies between a view and upstream: namespace names in request bodies become physical, and
//! in responses — objects, lists, Tables, Status errors and watch events — virtual again.
//! Watches are translated one event (line) at a time as they stream, with a bounded line
//! length; lists one item at a time as they stream ([`list`]); other responses whole, bounded in
//! size.

pub mod event;
mod item;
pub mod lines;
pub mod list;
mod tokens;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use serde_json::Value;

use crate::body::{self, Body, BoxError};
use crate::mask::read::ReadMask;
use crate::policy::secrets::SecretFilter;
use crate::rewrite::ViewNames;
use crate::rewrite::json::{map_namespace_names, map_namespaces, map_status_message};
use crate::status::Status;
use crate::tree::{NodeId, Tree};

/// Largest request body Canopy rewrites (objects are far smaller; etcd's limit is 1.5 MiB).
const MAX_REQUEST_BODY: usize = 8 << 20;
/// Largest non-watch response Canopy translates.
pub const MAX_RESPONSE_BODY: usize = 256 << 20;
/// Largest single watch event.
pub const MAX_EVENT: usize = 16 << 20;

/// How a response is translated back into a view.
#[derive(Clone)]
pub struct Translation {
    pub tree: Arc<Tree>,
    pub view: NodeId,
    /// `(physical, virtual)` namespace of the request, for Status messages.
    pub namespace: Option<(String, String)>,
    /// The response is a watch stream.
    pub watch: bool,
    /// The response is about Namespace objects, whose names are translated too.
    pub namespaces: bool,
    /// The response is about secrets in a view that limits their types.
    pub secrets: Option<SecretFilter>,
    /// Read masks on the resource.
    pub mask: Option<ReadMask>,
}

impl Translation {
    /// Translates one JSON document into the view; false when the document is hidden from it
    /// as a whole (a watch event about a secret of another type, which is then dropped).
    pub fn apply(&self, value: &mut Value) -> bool {
        let names = ViewNames::new(&self.tree, self.view);
        let to_virtual = |physical: &str| names.to_virtual(physical);
        map_namespaces(value, &to_virtual);
        if self.namespaces {
            map_namespace_names(value, &to_virtual);
        }
        if let Some((physical, virtual_name)) = &self.namespace {
            map_status_message(value, physical, virtual_name);
        }
        crate::rewrite::links::present(value, &self.tree, self.view);
        // Secrets are judged on whole objects first; the mask then strips and cuts Tables back.
        if !self.secrets.as_ref().is_none_or(|filter| filter.admit(value)) {
            return false;
        }
        if let Some(mask) = &self.mask {
            mask.apply(value);
        }
        true
    }

    /// One document translated; empty when it is hidden.
    pub fn apply_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        let mut value: Value = serde_json::from_slice(bytes)?;
        if !self.apply(&mut value) {
            return Ok(Vec::new());
        }
        Ok(serde_json::to_vec(&value)?)
    }
}

/// Rewrites namespace names in a JSON, YAML apply-patch or protobuf request body with `map`.
pub async fn request(
    request: Request<Body>,
    map: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Request<Body>, Status> {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let protobuf = content_type.contains("protobuf");
    let rewritable = protobuf || content_type.contains("json") || content_type.contains("apply-patch+yaml");
    if !rewritable {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = read_bytes(body).await?;
    if bytes.is_empty() {
        return Ok(Request::from_parts(parts, body::empty()));
    }
    if protobuf {
        let rewritten =
            crate::rewrite::protobuf::map_namespace(&bytes, map).map_err(|e| Status::bad_request(e.to_string()))?;
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
        return Ok(Request::from_parts(parts, body::full(rewritten)));
    }
    // JSON stays JSON; a YAML apply patch is sent as JSON, which is YAML too.
    with_document(parts, parse_document(&bytes)?, map)
}

/// An access review's (bounded) body as JSON, whether sent as JSON, YAML or protobuf (the content
/// type in `headers` then becomes JSON, as the body will be sent).
pub async fn read_review(body: Body, headers: &mut http::HeaderMap) -> Result<Value, Status> {
    let bytes = read_bytes(body).await?;
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("protobuf")) {
        let review =
            crate::rewrite::protobuf::review_to_json(&bytes).map_err(|e| Status::bad_request(e.to_string()))?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(review);
    }
    parse_document(&bytes)
}

/// A whole (bounded) request body.
pub async fn read_bytes(body: Body) -> Result<Bytes, Status> {
    Ok(Limited::new(body, MAX_REQUEST_BODY)
        .collect()
        .await
        .map_err(|e| Status::bad_request(format!("cannot read the request body: {e}")))?
        .to_bytes())
}

/// A JSON or YAML document.
pub fn parse_document(bytes: &[u8]) -> Result<Value, Status> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        // Server-side apply bodies may be YAML.
        Err(_) => serde_saphyr::from_slice(bytes)
            .map_err(|e| Status::bad_request(format!("the request body is not JSON or YAML: {e}"))),
    }
}

/// A request with `document` as its JSON body, namespace names mapped by `map`.
pub fn with_document(
    mut parts: http::request::Parts,
    mut document: Value,
    map: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Request<Body>, Status> {
    map_namespaces(&mut document, map);
    let rewritten = serde_json::to_vec(&document).map_err(|e| Status::internal(e.to_string()))?;
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
    Ok(Request::from_parts(parts, body::full(rewritten)))
}

/// Asks for JSON (the form Canopy rewrites) while keeping the JSON alternatives the client
/// listed (`as=Table`, aggregated discovery); no compression, no conditional answers.
pub fn ask_for_json(headers: &mut http::HeaderMap) {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let json: Vec<&str> =
        accept.split(',').map(str::trim).filter(|a| !a.is_empty() && !a.contains("protobuf")).collect();
    let accept = if json.is_empty() { "application/json".to_owned() } else { json.join(",") };
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(header::ACCEPT, value);
    }
    headers.remove(header::ACCEPT_ENCODING);
    headers.remove(header::IF_NONE_MATCH);
    headers.remove(header::IF_MODIFIED_SINCE);
}

/// A successful JSON response with `f` applied to its document; validators and caching headers
/// are dropped, since they describe the upstream's document, not this one.
pub fn map_document(response: Response<Body>, f: impl FnOnce(&mut Value) + Send + 'static) -> Response<Body> {
    let is_json =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if !is_json || !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    for name in [header::CONTENT_LENGTH, header::ETAG, header::LAST_MODIFIED, header::EXPIRES] {
        parts.headers.remove(name);
    }
    parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    let mapped = async move {
        let bytes = Limited::new(body, MAX_RESPONSE_BODY).collect().await?.to_bytes();
        let mut value: Value = serde_json::from_slice(&bytes)?;
        f(&mut value);
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(serde_json::to_vec(&value)?)))
    };
    Response::from_parts(parts, body::boxed(StreamBody::new(futures_util::stream::once(mapped))))
}

/// Translates a JSON response back into the view; other content types pass unchanged.
pub fn response(response: Response<Body>, translation: Translation) -> Response<Body> {
    let is_json =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if !is_json {
        return response;
    }
    let watch = translation.watch && response.status().is_success();
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = if watch {
        event::translate_events(body, translation, MAX_EVENT)
    } else {
        list::translate(body, translation, MAX_EVENT, MAX_RESPONSE_BODY)
    };
    Response::from_parts(parts, body)
}
