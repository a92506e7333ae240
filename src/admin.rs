//! The admin listener (plain HTTP, meant for loopback or the pod network's probes):
//! `/livez` (the process serves), `/readyz` (the upstream apiserver answers its own `/readyz`)
//! and `/metrics` (Prometheus text).

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::body::{self, Body};
use crate::metrics::Metrics;
use crate::upstream::UpstreamService;

/// How long `/readyz` waits for the upstream.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin endpoints report on.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Metrics,
    pub upstream: UpstreamService,
}

impl Admin {
    /// Serves admin requests on `tcp` until `shutdown` resolves.
    pub async fn serve(self, tcp: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = tcp.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let admin = self.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let admin = admin.clone();
                            async move { Ok::<_, Infallible>(admin.handle(request).await) }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                _ = &mut shutdown => return,
            }
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        }
        match request.uri().path() {
            "/livez" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => match self.upstream_ready().await {
                Ok(()) => text(StatusCode::OK, "ok\n".into()),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("upstream not ready: {reason}\n")),
            },
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.metrics.encode());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }

    async fn upstream_ready(&self) -> Result<(), String> {
        let request = Request::get("/readyz").body(body::empty()).map_err(|e| e.to_string())?;
        let call = self.upstream.clone().oneshot(request);
        match tokio::time::timeout(READY_TIMEOUT, call).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("answered {}", response.status())),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }
}

fn text(code: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
