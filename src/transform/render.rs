//! The last step of every answer in a view: what leaves is JSON that Canopy produced, or YAML
//! or protobuf (PartialObjectMetadata(List) and their watch events) rendered from it. Whatever upstream labels otherwise never passes: a success Canopy cannot
//! read is a `502`, an error whose body it cannot read keeps its code and gets Canopy's own
//! message (its bytes might name what the view may not see). Raw streams (logs, proxied
//! targets, upgraded connections) are not answers about objects and never come here.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use serde_json::Value;

use super::lines::split_lines;
use super::negotiate::Encoding;
use super::protobuf_meta::{self, MEDIA_TYPE as PROTOBUF, WATCH_MEDIA_TYPE as PROTOBUF_WATCH};
use super::{MAX_EVENT, MAX_RESPONSE_BODY};
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

/// Renders `response` (to a `method` request, `watch` or not) for the client in `encoding`.
pub async fn render(method: &Method, response: Response<Body>, encoding: Encoding, watch: bool) -> Response<Body> {
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
        // Errors stay JSON Statuses, which client-go reads whatever it asked for.
        Encoding::MetadataProtobuf { .. } if !response.status().is_success() => response,
        Encoding::MetadataProtobuf { .. } if watch => to_protobuf_events(response),
        Encoding::MetadataProtobuf { or_json } => to_protobuf(response, or_json).await,
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

/// The JSON answer as protobuf, whole: read before the headers are written, so a kind Canopy
/// cannot encode is answered in JSON where the client accepts it and `406` where it does not.
async fn to_protobuf(response: Response<Body>, or_json: bool) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bytes = match Limited::new(body, MAX_RESPONSE_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Status::bad_gateway(format!("reading the upstream answer: {error}")).into_response(),
    };
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|value| protobuf_meta::encode(&value).map_err(|e| e.to_string()));
    parts.headers.remove(header::CONTENT_LENGTH);
    match encoded {
        Ok(encoded) => {
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
            Response::from_parts(parts, body::full(encoded))
        }
        Err(_) if or_json => Response::from_parts(parts, body::full(bytes)),
        Err(reason) => {
            Status::not_acceptable(format!("the answer cannot be served in {PROTOBUF}: {reason}")).into_response()
        }
    }
}

/// The JSON watch stream as a protobuf one, one event at a time, each bounded as JSON events
/// are; an event Canopy cannot encode ends the stream (the client watches again).
fn to_protobuf_events(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF_WATCH));
    let frames = split_lines(body, MAX_EVENT).map(|line| {
        let event: Value = serde_json::from_slice(&line?)?;
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(protobuf_meta::encode_event(&event)?)))
    });
    Response::from_parts(parts, body::boxed(StreamBody::new(frames)))
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
        let rendered = render(&Method::GET, yaml, Encoding::Json, false).await;
        assert_eq!(rendered.status(), StatusCode::BAD_GATEWAY);
        assert!(!text(rendered).await.contains("acme-web-dev"));
        let error = response(503, Some("text/plain"), "acme-web-dev is gone");
        let rendered = render(&Method::GET, error, Encoding::Json, false).await;
        assert_eq!(rendered.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = text(rendered).await;
        assert!(body.contains("\"kind\":\"Status\"") && !body.contains("acme-web-dev"), "{body}");
        let protobuf = response(200, Some("application/vnd.kubernetes.protobuf;json"), "k8s\0");
        assert_eq!(render(&Method::GET, protobuf, Encoding::Json, false).await.status(), StatusCode::BAD_GATEWAY);
        let unlabelled = response(200, None, "{}");
        assert_eq!(render(&Method::GET, unlabelled, Encoding::Json, false).await.status(), StatusCode::BAD_GATEWAY);
    }

    #[tokio::test]
    async fn json_is_rendered_as_asked() {
        let json = || response(200, Some("application/json"), r#"{"kind":"Pod","metadata":{"name":"yes"}}"#);
        assert_eq!(
            text(render(&Method::GET, json(), Encoding::Json, false).await).await,
            r#"{"kind":"Pod","metadata":{"name":"yes"}}"#
        );
        let yaml = render(&Method::GET, json(), Encoding::Yaml, false).await;
        assert_eq!(yaml.headers()[header::CONTENT_TYPE], "application/yaml");
        let back: Value = serde_saphyr::from_str(&text(yaml).await).unwrap();
        assert_eq!(back, serde_json::json!({"kind": "Pod", "metadata": {"name": "yes"}}));
    }

    #[tokio::test]
    async fn bodiless_answers_pass() {
        let empty = Response::builder().status(204).body(body::empty()).unwrap();
        assert_eq!(render(&Method::DELETE, empty, Encoding::Yaml, false).await.status(), StatusCode::NO_CONTENT);
        let head = response(200, Some("text/plain"), "");
        assert_eq!(render(&Method::HEAD, head, Encoding::Json, false).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn metadata_is_encoded_in_protobuf_and_other_kinds_are_not() {
        let metadata = r#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"a"}}"#;
        let encoding = Encoding::MetadataProtobuf { or_json: false };
        let rendered = render(&Method::GET, response(200, Some("application/json"), metadata), encoding, false).await;
        assert_eq!(rendered.headers()[header::CONTENT_TYPE], PROTOBUF);
        assert!(text(rendered).await.starts_with("k8s\0"));
        let pod = || response(200, Some("application/json"), r#"{"kind":"Pod","apiVersion":"v1"}"#);
        let refused = render(&Method::GET, pod(), encoding, false).await;
        assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
        let or_json = render(&Method::GET, pod(), Encoding::MetadataProtobuf { or_json: true }, false).await;
        assert_eq!(text(or_json).await, r#"{"kind":"Pod","apiVersion":"v1"}"#);
        let error = render(&Method::GET, response(404, Some("application/json"), "{}"), encoding, false).await;
        assert_eq!(error.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn metadata_watch_events_are_framed_one_by_one() {
        let event = r#"{"type":"ADDED","object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1"}}"#;
        let stream = response(200, Some("application/json"), &format!("{event}\n{event}\n"));
        let rendered = render(&Method::GET, stream, Encoding::MetadataProtobuf { or_json: false }, true).await;
        assert_eq!(rendered.headers()[header::CONTENT_TYPE], PROTOBUF_WATCH);
        let bytes = rendered.into_body().collect().await.unwrap().to_bytes();
        let one = protobuf_meta::encode_event(&serde_json::from_str(event).unwrap()).unwrap();
        assert_eq!(bytes, [one.clone(), one].concat());
    }
}
