//! Upstream calls Canopy makes on a caller's behalf while judging a write: lookups and dry runs,
//! sent as the caller (impersonated through the same inner service the tenancy layer forwards
//! with), so upstream RBAC keeps deciding what the caller may see.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tower::{Service, ServiceExt};

use super::AsCanopy;
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::query::{Query, encode_pairs};
use crate::status::Status;

/// Largest upstream answer read here (one object; etcd's own limit is 1.5 MiB).
const MAX_OBJECT: usize = 16 << 20;

/// GET of `uri` (a physical object path) as `identity`, asking for JSON.
pub fn get(identity: &Identity, uri: &str) -> Result<Request<Body>, Status> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|_| Status::bad_request(format!("invalid object path {uri:?}")))?;
    request.extensions_mut().insert(identity.clone());
    Ok(request)
}

/// What the apiserver made of a dry run of the caller's write.
pub enum Tried {
    /// The object it would store.
    Object(Value),
    /// Its refusal, which the real write would meet too; the caller is shown it.
    Refused(Response<Body>),
}

/// Sends the caller's write (`parts` with body `bytes`) through `inner` as a dry run, as
/// `identity`.
pub async fn try_write<S>(
    inner: S,
    identity: &Identity,
    parts: &http::request::Parts,
    bytes: Bytes,
) -> Result<Tried, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
{
    let tried = inner.oneshot(dry_run(identity, parts, bytes)?).await?;
    if !tried.status().is_success() {
        return Ok(Tried::Refused(tried));
    }
    Ok(Tried::Object(read_json(tried.into_body()).await?))
}

/// The caller's write (`parts` with body `bytes`) as a dry run, as `identity`.
fn dry_run(identity: &Identity, parts: &http::request::Parts, bytes: Bytes) -> Result<Request<Body>, Status> {
    let mut query: Vec<(String, String)> = Query::parse(parts.uri.query().unwrap_or(""))?.into_pairs();
    query.retain(|(k, _)| k != "dryRun");
    query.push(("dryRun".into(), "All".into()));
    let uri = format!("{}?{}", parts.uri.path(), encode_pairs(&query));
    let length = bytes.len();
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body::full(bytes))
        .map_err(|_| Status::bad_request("invalid request URI"))?;
    *request.headers_mut() = parts.headers.clone();
    request.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    request.headers_mut().insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    request.extensions_mut().insert(identity.clone());
    // A write Canopy makes as itself (a tenant's namespace) is tried as itself too.
    if let Some(as_canopy) = parts.extensions.get::<AsCanopy>() {
        request.extensions_mut().insert(*as_canopy);
    }
    Ok(request)
}

/// Percent-encodes one path segment.
pub fn encode_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A bounded upstream answer.
pub async fn read(body: Body) -> Result<Bytes, Status> {
    Ok(Limited::new(body, MAX_OBJECT)
        .collect()
        .await
        .map_err(|e| Status::bad_gateway(format!("cannot read the upstream answer: {e}")))?
        .to_bytes())
}

/// A bounded upstream answer as JSON.
pub async fn read_json(body: Body) -> Result<Value, Status> {
    serde_json::from_slice(&read(body).await?)
        .map_err(|e| Status::bad_gateway(format!("the upstream answer is not JSON: {e}")))
}
