//! Phase 3: an answer about objects or discovery is asked of upstream in JSON and rendered by
//! Canopy in the encoding the client negotiated, never passed on as upstream sent it (design
//! invariant 10); the warnings Canopy's reading of the request gives go with it.

use std::sync::{Arc, Mutex};

use http::{HeaderValue, Request, Response, header};

use super::{Decision, Inner, Phase};
use crate::body::Body;
use crate::discovery::Document;
use crate::request::RequestInfo;
use crate::request::headers::is_upgrade;
use crate::status::Status;
use crate::transform;
use crate::transform::negotiate::Answer;

/// Negotiates and renders answers in a view.
#[derive(Clone, Default)]
pub struct Negotiate;

impl Phase for Negotiate {
    async fn serve<S: Inner>(&self, mut request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        let Some(decision) = request.extensions().get::<Arc<Decision>>().cloned() else {
            return inner.call(request).await;
        };
        let info = &decision.info;
        if !renders(info, request.headers()) {
            return inner.call(request).await;
        }
        let kind = match (info.verb == "watch", Document::of(info)) {
            (true, _) => Answer::Watch,
            (false, Some(Document::OpenApi { group: None })) => Answer::OpenApiV2,
            (false, _) => Answer::Document,
        };
        let method = request.method().clone();
        let encoding = transform::negotiate::ask_upstream(request.headers_mut(), kind)?;
        request.extensions_mut().insert(encoding);
        let warnings = Warnings::default();
        request.extensions_mut().insert(warnings.clone());
        let watch = kind == Answer::Watch;
        let mut response = transform::render::render(&method, inner.call(request).await?, encoding, watch).await;
        for warning in warnings.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // RFC 7234's form, as the apiserver writes its warnings.
            let text = format!("299 - {}", serde_json::Value::from(warning.as_str()));
            if let Ok(value) = HeaderValue::from_str(&text) {
                response.headers_mut().append(header::WARNING, value);
            }
        }
        Ok(response)
    }
}

/// Warnings Canopy's reading of the request gives, as the apiserver would have given them.
#[derive(Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    pub fn push(&self, warning: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(warning);
    }
}

/// Whether the answer is about objects or discovery, so Canopy renders it. Logs, proxied
/// targets and upgraded streams are the caller's own bytes; `/version` and health checks hold
/// nothing of any tenant.
pub fn renders(info: &RequestInfo, headers: &http::HeaderMap) -> bool {
    if !info.is_resource_request {
        return Document::of(info).is_some();
    }
    let raw = info.is_proxy() || matches!(info.subresource.as_str(), "log" | "exec" | "attach" | "portforward");
    !raw && !is_upgrade(headers)
}
