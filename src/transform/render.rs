//! The last step of every answer in a view: what leaves is JSON that Canopy produced, or YAML
//! rendered from it. Whatever upstream labels otherwise never passes: a success Canopy cannot
//! read is a `502`, an error whose body it cannot read keeps its code and gets Canopy's own
//! message (its bytes might name what the view may not see). Raw streams (logs, proxied
//! targets, upgraded connections) are not answers about objects and never come here.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use serde_json::Value;

use super::MAX_RESPONSE_BODY;
use super::negotiate::Encoding;
use crate::body::{self, Body, BoxError};
use crate::status::Status;

/// Whether `headers` label a JSON body (`application/json`, with or without parameters).
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    value.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `response` to a `method` request carries no body at all.
fn bodiless(method: &Method, response: &Response<Body>) -> bool {
    let status = response.status();
    *method == Method::HEAD
        || status == StatusCode::SWITCHING_PROTOCOLS
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || response.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v == "0")
}

/// Renders `response` (to a `method` request) for the client in `encoding`.
pub fn render(method: &Method, response: Response<Body>, encoding: Encoding) -> Response<Body> {
    if bodiless(method, &response) {
        return response;
    }
    // The OpenAPI v2 document in protobuf was filtered on the wire; its errors are JSON Statuses.
    let filtered = encoding == Encoding::OpenApiV2Protobuf && response.status().is_success();
    if !filtered && !is_json(response.headers()) {
        return unreadable(&response).into_response();
    }
    match encoding {
        Encoding::Json | Encoding::OpenApiV2Protobuf => response,
        Encoding::Yaml => to_yaml(response),
    }
}

/// Canopy's answer in place of an upstream body it cannot read.
fn unreadable(response: &Response<Body>) -> Status {
    let label = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("no type");
    let status = response.status();
    if status.is_success() {
        return Status::bad_gateway(format!(
            "the upstream apiserver answered in {label}, which Canopy does not read; nothing of it is passed on"
        ));
    }
    Status::from_code(status, format!("the upstream apiserver answered {status} ({label}, which Canopy does not read)"))
}

/// The JSON answer as YAML, whole (answers that can be YAML are bounded; watches cannot be).
fn to_yaml(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
    let rendered = async move {
        let bytes = Limited::new(body, MAX_RESPONSE_BODY).collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes)?;
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(serde_saphyr::to_string(&value)?)))
    };
    Response::from_parts(parts, body::boxed(StreamBody::new(futures_util::stream::once(rendered))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, content_type: Option<&str>, text: &str) -> Response<Body> {
        let mut builder = Response::builder().status(status);
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        builder.body(body::full(text.to_owned())).unwrap()
    }

    async fn text(response: Response<Body>) -> String {
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn what_canopy_cannot_read_never_passes() {
        let yaml = response(200, Some("application/yaml"), "kind: Secret\nnamespace: acme-web-dev\n");
        let rendered = render(&Method::GET, yaml, Encoding::Json);
        assert_eq!(rendered.status(), StatusCode::BAD_GATEWAY);
        assert!(!text(rendered).await.contains("acme-web-dev"));
        let error = response(503, Some("text/plain"), "acme-web-dev is gone");
        let rendered = render(&Method::GET, error, Encoding::Json);
        assert_eq!(rendered.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = text(rendered).await;
        assert!(body.contains("\"kind\":\"Status\"") && !body.contains("acme-web-dev"), "{body}");
        let protobuf = response(200, Some("application/vnd.kubernetes.protobuf;json"), "k8s\0");
        assert_eq!(render(&Method::GET, protobuf, Encoding::Json).status(), StatusCode::BAD_GATEWAY);
        let unlabelled = response(200, None, "{}");
        assert_eq!(render(&Method::GET, unlabelled, Encoding::Json).status(), StatusCode::BAD_GATEWAY);
    }

    #[tokio::test]
    async fn json_is_rendered_as_asked() {
        let json = || response(200, Some("application/json"), r#"{"kind":"Pod","metadata":{"name":"yes"}}"#);
        assert_eq!(
            text(render(&Method::GET, json(), Encoding::Json)).await,
            r#"{"kind":"Pod","metadata":{"name":"yes"}}"#
        );
        let yaml = render(&Method::GET, json(), Encoding::Yaml);
        assert_eq!(yaml.headers()[header::CONTENT_TYPE], "application/yaml");
        let back: Value = serde_saphyr::from_str(&text(yaml).await).unwrap();
        assert_eq!(back, serde_json::json!({"kind": "Pod", "metadata": {"name": "yes"}}));
    }

    #[tokio::test]
    async fn bodiless_answers_pass() {
        let empty = Response::builder().status(204).body(body::empty()).unwrap();
        assert_eq!(render(&Method::DELETE, empty, Encoding::Yaml).status(), StatusCode::NO_CONTENT);
        let head = response(200, Some("text/plain"), "");
        assert_eq!(render(&Method::HEAD, head, Encoding::Json).status(), StatusCode::OK);
    }
}
