//! Kubernetes `Status` errors: every error Canopy itself answers with is one of these, so kubectl
//! prints `Error from server (Forbidden): …` exactly as it would for the apiserver.

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::{self, Body};

/// An API error, rendered as a `kind: Status` object with the matching HTTP code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// HTTP status code, also written as `code` in the body.
    pub code: StatusCode,
    /// Machine-readable `reason` (`Forbidden`, `NotFound`, `Unauthorized`, …).
    pub reason: &'static str,
    /// Human-readable message; never holds a name the caller may not see.
    pub message: String,
    /// What the error is about, as the apiserver's `details` say it (in the caller's names);
    /// boxed, so that a `Result` carrying a `Status` stays small.
    pub details: Option<Box<Details>>,
}

/// The object a Status is about: `details` of an apiserver Status (`kind` holds the resource,
/// as the apiserver writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// When the client may try again; also sent as the `Retry-After` header.
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// The fields at fault, for `422 Invalid`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

/// One field at fault in an invalid object, as the apiserver's `details.causes[]` say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// `FieldValueInvalid`.
    pub reason: &'static str,
    pub message: String,
    /// `spec.containers[0].image`.
    pub field: String,
}

impl Status {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    /// The status about object `name` of `resource` in API group `group`.
    pub fn about(mut self, name: &str, group: &str, resource: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: resource.to_owned(),
            retry_after_seconds: None,
            causes: Vec::new(),
        }));
        self
    }

    /// 422 about object `name` of `kind` (`Deployment`) in `group`, invalid in the fields
    /// `causes` name (`(field, message)`), worded as the apiserver words it so kubectl prints
    /// `The Deployment "x" is invalid: spec.replicas: …`.
    pub fn invalid_fields(kind: &str, group: &str, name: &str, causes: Vec<(String, String)>) -> Self {
        let qualified = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
        let errors: Vec<String> = causes.iter().map(|(field, message)| format!("{field}: {message}")).collect();
        let listed = match errors.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut status = Self::invalid(format!("{qualified} {name:?} is invalid: {listed}"));
        status.details = Some(Box::new(Details {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            retry_after_seconds: None,
            causes: causes
                .into_iter()
                .map(|(field, message)| Cause { reason: "FieldValueInvalid", message, field })
                .collect(),
        }));
        status
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401: no identity could be established.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 404: the object (or anything the caller may not know about) does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 410: what the caller holds is out of date (a watch whose view changed); list again.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 422: the object asked for is not valid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// 406: the client accepts no encoding Canopy can produce.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "NotAcceptable", message)
    }

    /// 415: a body Canopy must judge came in a form it cannot read.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", message)
    }

    /// 413: the request body is larger than Canopy accepts.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", message)
    }

    /// 429: the client asks too much too fast; it may try again after `retry_after` (rounded up
    /// to whole seconds, at least one, as `Retry-After` counts).
    pub fn too_many_requests(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let mut status = Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message);
        status.details = Some(Box::new(Details {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            retry_after_seconds: Some(seconds.max(1)),
            causes: Vec::new(),
        }));
        status
    }

    /// 500: Canopy itself failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// 502: the upstream answered with something that is not HTTP we can relay.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "BadGateway", message)
    }

    /// 503: the upstream apiserver cannot be reached right now.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
    }

    /// 408: the client did not send its request in time.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "Timeout", message)
    }

    /// 504: the upstream apiserver did not answer in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message)
    }

    /// An error with upstream's `code`, and the reason Kubernetes gives that code.
    pub fn from_code(code: StatusCode, message: impl Into<String>) -> Self {
        let reason = match code.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            406 => "NotAcceptable",
            409 => "Conflict",
            410 => "Expired",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(code, reason, message)
    }

    /// The `Status` object as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            kind: &'static str,
            api_version: &'static str,
            metadata: serde_json::Map<String, serde_json::Value>,
            status: &'static str,
            message: &'a str,
            reason: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a Details>,
            code: u16,
        }
        let wire = Wire {
            kind: "Status",
            api_version: "v1",
            metadata: serde_json::Map::new(),
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details: self.details.as_deref(),
            code: self.code.as_u16(),
        };
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The HTTP response carrying this status.
    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(body::full(self.to_json()));
        *response.status_mut() = self.code;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(seconds) = self.details.and_then(|d| d.retry_after_seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code.as_u16(), self.message)
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_is_what_kubectl_parses() {
        let json: serde_json::Value = serde_json::from_slice(&Status::forbidden("no \"way\"").to_json()).unwrap();
        assert_eq!(json["kind"], "Status");
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["status"], "Failure");
        assert_eq!(json["reason"], "Forbidden");
        assert_eq!(json["code"], 403);
        assert_eq!(json["message"], "no \"way\"");
        assert!(json.get("details").is_none());
        let about = Status::forbidden("no").about("standard", "storage.k8s.io", "storageclasses").to_json();
        let json: serde_json::Value = serde_json::from_slice(&about).unwrap();
        assert_eq!(
            json["details"],
            serde_json::json!({"name": "standard", "group": "storage.k8s.io", "kind": "storageclasses"})
        );
    }

    #[test]
    fn invalid_fields_read_as_the_apiservers_field_errors() {
        let causes = vec![("spec.replicas".to_owned(), "Invalid value: 11: too many".to_owned())];
        let json: serde_json::Value =
            serde_json::from_slice(&Status::invalid_fields("Deployment", "apps", "w", causes).to_json()).unwrap();
        assert_eq!((json["reason"].as_str(), json["code"].as_u64()), (Some("Invalid"), Some(422)));
        assert_eq!(json["message"], "Deployment.apps \"w\" is invalid: spec.replicas: Invalid value: 11: too many");
        assert_eq!(
            json["details"],
            serde_json::json!({"name": "w", "group": "apps", "kind": "Deployment", "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value: 11: too many", "field": "spec.replicas"}
            ]})
        );
    }

    #[test]
    fn too_many_requests_says_when_to_retry() {
        let status = Status::too_many_requests("slow down", std::time::Duration::from_millis(1_200));
        let json: serde_json::Value = serde_json::from_slice(&status.to_json()).unwrap();
        assert_eq!((json["reason"].as_str(), json["code"].as_u64()), (Some("TooManyRequests"), Some(429)));
        assert_eq!(json["details"], serde_json::json!({"retryAfterSeconds": 2}));
        let response = status.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = Status::too_many_requests("now", std::time::Duration::ZERO).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn response_carries_code_and_content_type() {
        let response = Status::service_unavailable("down").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}

/// The outermost layer: renders every [`Status`] error from the layers below as its response,
/// so no layer renders its own and the stack as a whole never fails.
#[derive(Clone, Copy, Default)]
pub struct RenderStatusLayer;

impl<S> tower::Layer<S> for RenderStatusLayer {
    type Service = RenderStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RenderStatus { inner, not_ready: None }
    }
}

/// See [`RenderStatusLayer`].
#[derive(Clone)]
pub struct RenderStatus<S> {
    inner: S,
    /// A readiness failure, answered to the next call instead of failing the connection.
    not_ready: Option<Status>,
}

impl<S, Req> tower::Service<Req> for RenderStatus<S>
where
    S: tower::Service<Req, Response = Response<Body>, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        futures_util::future::Ready<Result<Response<Body>, std::convert::Infallible>>,
        RenderFuture<S::Future>,
    >;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        if let Err(status) = std::task::ready!(self.inner.poll_ready(cx)) {
            self.not_ready = Some(status);
        }
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.not_ready.take() {
            Some(status) => futures_util::future::Either::Left(futures_util::future::ready(Ok(status.into_response()))),
            None => futures_util::future::Either::Right(RenderFuture { inner: self.inner.call(request) }),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`RenderStatus`].
    pub struct RenderFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Future for RenderFuture<F>
where
    F: Future<Output = Result<Response<Body>, Status>>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let result = std::task::ready!(self.project().inner.poll(cx));
        std::task::Poll::Ready(Ok(result.unwrap_or_else(Status::into_response)))
    }
}
