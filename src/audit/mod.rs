//! Audit: one JSON line per request on stdout (logs go to stderr) — who, from which view, did
//! what to which object, what Canopy decided and why, the answer's code and the latency.
//! Layers deeper in the stack add what they learn to the request's [`AuditSlot`]; the
//! [`AuditLayer`] writes the line when the answer's head is known. Credentials never reach the
//! record: it holds the authenticated identity only.

mod sink;

pub use sink::AuditSink;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use serde::Serialize;
use tower::{Layer, Service};

use crate::auth::Identity;
use crate::body::Body;
use crate::request::RequestInfo;
use crate::status::Status;

/// What is known about one request so far; written as one JSON line.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub time: String,
    pub method: String,
    /// The path as the client sent it (virtual names), without the query.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub verb: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// The namespace as the view names it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_namespace: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `allowed` or `denied`.
    pub decision: &'static str,
    /// The rule that allowed the request, or why it was refused.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub code: u16,
    pub latency_ms: f64,
}

impl Record {
    /// Records what the request asks for.
    pub fn request(&mut self, info: &RequestInfo) {
        self.verb.clone_from(&info.verb);
        self.api_group.clone_from(&info.api_group);
        self.resource.clone_from(&info.resource);
        self.subresource.clone_from(&info.subresource);
        self.namespace.clone_from(&info.namespace);
        self.name.clone_from(&info.name);
    }

    /// Records who asks.
    pub fn identity(&mut self, identity: &Identity) {
        self.user = Some(identity.user.clone());
        self.groups.clone_from(&identity.groups);
    }
}

/// The request's record, shared with the layers that fill it in.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Record>>);

impl AuditSlot {
    /// Adds to the record.
    pub fn update(&self, f: impl FnOnce(&mut Record)) {
        if let Ok(mut record) = self.0.lock() {
            f(&mut record);
        }
    }

    /// Adds to the record of `request`, if it is audited.
    pub fn on<B>(request: &Request<B>, f: impl FnOnce(&mut Record)) {
        if let Some(slot) = request.extensions().get::<AuditSlot>() {
            slot.update(f);
        }
    }

    fn take(&self) -> Record {
        self.0.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }
}

/// Writes an audit line per request to a sink.
#[derive(Clone)]
pub struct AuditLayer {
    sink: Option<AuditSink>,
}

impl AuditLayer {
    /// `None`: auditing is off.
    pub fn new(sink: Option<AuditSink>) -> Self {
        Self { sink }
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService { sink: self.sink.clone(), inner }
    }
}

/// See [`AuditLayer`].
#[derive(Clone)]
pub struct AuditService<S> {
    sink: Option<AuditSink>,
    inner: S,
}

impl<S> Service<Request<Body>> for AuditService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let Some(sink) = self.sink.clone() else { return Box::pin(self.inner.call(request)) };
        let started = Instant::now();
        let slot = AuditSlot::default();
        slot.update(|r| {
            r.time = k8s_openapi::jiff::Timestamp::now().to_string();
            r.method = request.method().to_string();
            r.path = request.uri().path().to_owned();
        });
        request.extensions_mut().insert(slot.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            let mut record = slot.take();
            record.latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
            match &result {
                Ok(response) => {
                    record.code = response.status().as_u16();
                    if record.decision.is_empty() {
                        record.decision = "allowed";
                    }
                }
                Err(status) => {
                    record.code = status.code.as_u16();
                    record.decision = "denied";
                    record.reason.clone_from(&status.message);
                }
            }
            sink.write(&record);
            result
        })
    }
}
