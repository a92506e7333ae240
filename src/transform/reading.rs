//! The one reading of a request body in a view. Canopy reads the body once, as the apiserver
//! will read it ([`crate::decode`]: duplicate keys, YAML merge keys, tags and anchors refused),
//! and from then on the body *is* Canopy's JSON serialization of that value: every check judges
//! it and upstream receives exactly it, never the client's bytes. A body in an encoding Canopy
//! does not read is refused with `415`; protobuf, whose objects Canopy does not decode whole, is
//! the one encoding that passes with only its namespace rewritten, and its writes are judged on
//! what the apiserver makes of them (see `policy::protobuf_gate`).

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};

use super::read_bytes;
use crate::body::{self, Body};
use crate::decode;
use crate::request::query::Query;
use crate::status::Status;

/// How a body is read, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// JSON, sent on as JSON under the content type given.
    Json(&'static str),
    /// YAML, sent on as JSON (which is YAML too) under the content type given.
    Yaml(&'static str),
    /// Kubernetes protobuf: namespace rewritten in place, see [`super::request`].
    Protobuf,
}

/// The form of a body labelled `content_type` on a `method` request; `None`: not readable.
fn form(method: &Method, content_type: &str) -> Option<Form> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    Some(match essence.as_str() {
        // The apiserver reads a body without a type as JSON; a patch must name its kind.
        "" if *method != Method::PATCH => Form::Json("application/json"),
        "application/json" => Form::Json("application/json"),
        "application/json-patch+json" => Form::Json("application/json-patch+json"),
        "application/merge-patch+json" => Form::Json("application/merge-patch+json"),
        "application/strategic-merge-patch+json" => Form::Json("application/strategic-merge-patch+json"),
        "application/yaml" if *method != Method::PATCH => Form::Yaml("application/json"),
        "application/apply-patch+yaml" => Form::Yaml("application/apply-patch+yaml"),
        "application/vnd.kubernetes.protobuf" => Form::Protobuf,
        _ => return None,
    })
}

/// `request` with its body replaced by Canopy's reading of it (see the module docs), and the
/// warning the apiserver would have given about the body as sent. Bodies of reads are dropped
/// unread: the apiserver ignores them.
///
/// A JSON key given twice is read as the request's `fieldValidation` says (the apiserver's
/// default is `Warn`): `Strict` refuses it; `Warn` and `Ignore` keep a scalar's last value, as
/// the apiserver does, `Warn` with the warning it gives. Upstream then receives no duplicate.
pub async fn canonical(request: Request<Body>) -> Result<(Request<Body>, Option<String>), Status> {
    let (mut parts, body) = request.into_parts();
    if matches!(parts.method, Method::GET | Method::HEAD) {
        parts.headers.remove(header::CONTENT_LENGTH);
        return Ok((Request::from_parts(parts, body::empty()), None));
    }
    let label = parts.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not ASCII)")).unwrap_or("");
    let Some(form) = form(&parts.method, label) else {
        return Err(Status::unsupported_media_type(format!(
            "the body's type {label:?} is not one Canopy reads (JSON, YAML, a patch type or protobuf)"
        )));
    };
    let bytes = read_bytes(body).await?;
    let query = Query::parse(parts.uri.query().unwrap_or(""))?;
    let validation = query.get("fieldValidation");
    let mut warning = None;
    let (bytes, content_type) = match form {
        _ if bytes.is_empty() => (bytes, None),
        Form::Protobuf => (bytes, None),
        Form::Json(content_type) if validation == Some("Strict") => {
            (reserialize(decode::json(&bytes).map_err(strict_error))?, Some(content_type))
        }
        Form::Json(content_type) => {
            let (value, kept) = decode::json_last_scalar(&bytes).map_err(|e| read_error(&e))?;
            let silent = validation == Some("Ignore");
            warning = kept.first().filter(|_| !silent).map(|field| format!("duplicate field {field:?}"));
            (reserialize(Ok(value))?, Some(content_type))
        }
        Form::Yaml(content_type) => (reserialize(decode::yaml(&bytes))?, Some(content_type)),
    };
    if let Some(content_type) = content_type {
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok((Request::from_parts(parts, body::full(bytes)), warning))
}

fn read_error(error: &decode::DecodeError) -> Status {
    Status::bad_request(format!("the request body cannot be read one way only: {error}"))
}

/// A duplicate under `fieldValidation=Strict`, in the apiserver's words.
fn strict_error(error: decode::DecodeError) -> decode::DecodeError {
    match error {
        decode::DecodeError::JsonDuplicateKey { key, path, .. } => {
            let field = if path.is_empty() { key } else { format!("{path}.{key}") };
            decode::DecodeError::Json(format!("strict decoding error: duplicate field {field:?}"))
        }
        other => other,
    }
}

fn reserialize(read: Result<serde_json::Value, decode::DecodeError>) -> Result<Bytes, Status> {
    let value = read.map_err(|e| read_error(&e))?;
    serde_json::to_vec(&value).map(Bytes::from).map_err(|e| Status::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn read(method: Method, content_type: Option<&str>, text: &str) -> Result<(String, String), Status> {
        let mut builder = Request::builder().method(method).uri("/api/v1/namespaces/dev/pods");
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        let (request, _) = canonical(builder.body(body::full(text.to_owned())).unwrap()).await?;
        let label = request.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        Ok((label.unwrap_or_default(), String::from_utf8(bytes.to_vec()).unwrap()))
    }

    #[tokio::test]
    async fn yaml_is_sent_on_as_the_json_canopy_read() {
        let (label, text) =
            read(Method::POST, Some("application/yaml"), "kind: Pod\nmetadata: {name: p}\n").await.unwrap();
        assert_eq!((label.as_str(), text.as_str()), ("application/json", r#"{"kind":"Pod","metadata":{"name":"p"}}"#));
        let (label, _) = read(Method::PATCH, Some("application/apply-patch+yaml"), "kind: Pod").await.unwrap();
        assert_eq!(label, "application/apply-patch+yaml");
    }

    #[tokio::test]
    async fn a_body_without_a_type_is_json() {
        let (label, text) = read(Method::PUT, None, r#"{"kind": "Pod"}"#).await.unwrap();
        assert_eq!((label.as_str(), text.as_str()), ("application/json", r#"{"kind":"Pod"}"#));
    }

    #[tokio::test]
    async fn readers_disagreeing_is_refused() {
        let merge = "spec: {! <<: {nodeSelector: {x: \"1\"}}, containers: []}";
        assert_eq!(read(Method::POST, Some("application/yaml"), merge).await.unwrap_err().code, 400);
        let duplicate = r#"{"spec": {"nodeName": "a"}, "spec": {}}"#;
        assert_eq!(read(Method::POST, Some("application/json"), duplicate).await.unwrap_err().code, 400);
    }

    #[tokio::test]
    async fn a_scalar_given_twice_follows_field_validation() {
        let body = || body::full(r#"{"data": {"a": "1", "a": "2"}}"#);
        let request = |query: &str| {
            Request::post(format!("/api/v1/namespaces/dev/configmaps{query}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body())
                .unwrap()
        };
        let (sent, warning) = canonical(request("")).await.unwrap();
        assert_eq!(warning.as_deref(), Some("duplicate field \"data.a\""));
        let bytes = sent.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], br#"{"data":{"a":"2"}}"#);
        assert_eq!(canonical(request("?fieldValidation=Ignore")).await.unwrap().1, None);
        let strict = canonical(request("?fieldValidation=Strict")).await.unwrap_err();
        assert_eq!(strict.code, 400);
        assert!(strict.message.contains("strict decoding error: duplicate field \"data.a\""), "{}", strict.message);
    }

    #[tokio::test]
    async fn unknown_types_are_refused() {
        for (method, label) in [
            (Method::POST, "application/cbor"),
            (Method::POST, "text/plain"),
            (Method::PATCH, "application/yaml"),
            (Method::PATCH, ""),
        ] {
            let label = Some(label).filter(|l| !l.is_empty());
            assert_eq!(read(method, label, "{}").await.unwrap_err().code, 415, "{label:?}");
        }
    }

    #[tokio::test]
    async fn bodies_of_reads_are_dropped() {
        assert_eq!(read(Method::GET, Some("application/yaml"), "<<: x").await.unwrap().1, "");
    }
}
