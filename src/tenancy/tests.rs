//! Each phase with `tower::service_fn` standing in for the rest of the pipeline and upstream.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::{RequestInfo, ViewPath};
use crate::status::Status;
use crate::tree::Tree;

/// What upstream was asked: method and path with query.
type Asked = Arc<Mutex<Vec<String>>>;

fn trees() -> watch::Receiver<Arc<Tree>> {
    watch::channel(Arc::new(crate::policy::tests::example())).1
}

fn request(who: &str, method: Method, uri: &str, body: &str) -> Request<Body> {
    let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
    let mut request = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body::full(body.to_owned()))
        .unwrap();
    request.extensions_mut().insert(RequestInfo::parse(&method, path, query).unwrap());
    request.extensions_mut().insert(Identity::new(who, ["system:authenticated"]));
    request.extensions_mut().insert(ViewPath::default());
    request
}

/// Upstream answering every request with `answer`, recording what it was asked.
fn upstream(asked: &Asked, answer: Value) -> impl Inner {
    let asked = Arc::clone(asked);
    service_fn(move |request: Request<Body>| {
        let (asked, answer) = (Arc::clone(&asked), answer.clone());
        async move {
            asked.lock().unwrap().push(format!("{} {}", request.method(), request.uri()));
            let bytes = serde_json::to_vec(&answer).unwrap();
            Ok::<_, Status>(
                Response::builder().header(header::CONTENT_TYPE, "application/json").body(body::full(bytes)).unwrap(),
            )
        }
    })
}

async fn json(response: Response<Body>) -> Value {
    serde_json::from_slice(&crate::transform::read_bytes(response.into_body()).await.unwrap()).unwrap()
}

#[tokio::test]
async fn the_view_phase_ends_a_refused_request_before_anything_below() {
    let asked = Asked::default();
    let stack = ViewLayer::new(trees()).layer(upstream(&asked, json!({})));
    let refused = stack.oneshot(request("bob", Method::GET, "/api/v1/namespaces/main/configmaps", "")).await;
    assert_eq!(refused.unwrap_err().code, StatusCode::NOT_FOUND);
    assert!(asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_view_phase_hands_on_its_decision() {
    let seen = service_fn(|request: Request<Body>| async move {
        let decision = request.extensions().get::<Arc<Decision>>().unwrap();
        assert_eq!(decision.plan.namespace, Some(("acme-web-dev".into(), "dev".into())));
        assert_eq!(decision.tree.nodes[decision.governing].path, "acme/web");
        Ok::<_, Status>(Response::new(body::empty()))
    });
    let stack = ViewLayer::new(trees()).layer(seen);
    stack.oneshot(request("bob", Method::GET, "/api/v1/namespaces/dev/configmaps", "")).await.unwrap();
}

#[tokio::test]
async fn the_rewrite_phase_sends_physical_names_and_answers_virtual_ones() {
    let asked = Asked::default();
    let list = json!({"kind": "ConfigMapList", "items": [{"metadata": {"name": "c", "namespace": "acme-web-dev"}}]});
    let stack = ViewLayer::new(trees()).layer(RewriteLayer::default().layer(upstream(&asked, list)));
    let answer = stack.oneshot(request("bob", Method::GET, "/api/v1/namespaces/dev/configmaps", "")).await.unwrap();
    assert_eq!(json(answer).await["items"][0]["metadata"]["namespace"], "dev");
    assert_eq!(*asked.lock().unwrap(), ["GET /api/v1/namespaces/acme-web-dev/configmaps"]);
}

#[tokio::test]
async fn the_rewrite_phase_reads_body_namespaces_in_view_terms() {
    let seen = service_fn(|request: Request<Body>| async move {
        let sent = crate::transform::read_bytes(request.into_body()).await?;
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(sent["metadata"]["namespace"], "acme-web-dev");
        Ok::<_, Status>(Response::new(body::empty()))
    });
    let stack = ViewLayer::new(trees()).layer(RewriteLayer::default().layer(seen));
    let body = r#"{"kind":"ConfigMap","metadata":{"name":"c","namespace":"dev"}}"#;
    stack.oneshot(request("bob", Method::POST, "/api/v1/namespaces/dev/configmaps", body)).await.unwrap();
}

#[tokio::test]
async fn the_fan_out_phase_asks_every_namespace_of_the_view() {
    let asked = Asked::default();
    let list = json!({"kind": "ConfigMapList", "metadata": {"resourceVersion": "1"}, "items": []});
    let below = FanOutLayer::default().layer(upstream(&asked, list));
    let stack = ViewLayer::new(trees()).layer(RewriteLayer::default().layer(below));
    let answer = stack.oneshot(request("bob", Method::GET, "/api/v1/configmaps", "")).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    // The second namespace is read at the first's resourceVersion: one snapshot.
    let mut asked: Vec<String> =
        asked.lock().unwrap().iter().map(|a| a.split('?').next().unwrap().to_owned()).collect();
    asked.sort();
    assert_eq!(
        asked,
        ["GET /api/v1/namespaces/acme-web-dev/configmaps", "GET /api/v1/namespaces/acme-web-prod/configmaps"]
    );
}

#[tokio::test]
async fn the_gate_phase_hides_a_secret_of_a_type_outside_the_view() {
    let asked = Asked::default();
    let secret = json!({"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "s", "namespace": "acme-data-warehouse"}});
    let below = GateLayer::default().layer(upstream(&asked, secret));
    let stack = ViewLayer::new(trees()).layer(RewriteLayer::default().layer(below));
    let refused = stack.oneshot(request("carol", Method::GET, "/api/v1/namespaces/warehouse/secrets/s", "")).await;
    assert_eq!(refused.unwrap_err().code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_review_phase_answers_what_the_tree_refuses_without_upstream() {
    let asked = Asked::default();
    let below = ReviewLayer::default().layer(upstream(&asked, json!({})));
    let stack = ViewLayer::new(trees()).layer(RewriteLayer::default().layer(below));
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "main", "verb": "get", "resource": "configmaps"}}
    });
    let uri = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let answer = stack.oneshot(request("bob", Method::POST, uri, &review.to_string())).await.unwrap();
    assert_eq!(json(answer).await["status"]["allowed"], false);
    assert!(asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_discovery_phase_hides_groups_outside_the_ceiling() {
    let asked = Asked::default();
    let stack = ViewLayer::new(trees()).layer(DiscoveryLayer::default().layer(upstream(&asked, json!({}))));
    let refused = stack.oneshot(request("carol", Method::GET, "/apis/rbac.authorization.k8s.io/v1", "")).await;
    assert_eq!(refused.unwrap_err().code, StatusCode::NOT_FOUND);
    assert!(asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_negotiate_phase_asks_json_and_renders_what_the_client_accepts() {
    let seen = service_fn(|request: Request<Body>| async move {
        assert!(request.headers()[header::ACCEPT].to_str().unwrap().starts_with("application/json"));
        let bytes = serde_json::to_vec(&json!({"kind": "ConfigMap", "metadata": {"name": "c"}})).unwrap();
        Ok::<_, Status>(
            Response::builder().header(header::CONTENT_TYPE, "application/json").body(body::full(bytes)).unwrap(),
        )
    });
    let stack = ViewLayer::new(trees()).layer(NegotiateLayer::default().layer(seen));
    let mut asked = request("bob", Method::GET, "/api/v1/namespaces/dev/configmaps/c", "");
    asked.headers_mut().insert(header::ACCEPT, "application/yaml".parse().unwrap());
    let answer = stack.oneshot(asked).await.unwrap();
    assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/yaml");
}

#[tokio::test]
async fn with_an_empty_tree_every_phase_passes_the_caller_on() {
    let asked = Asked::default();
    let (_, empty) = watch::channel(Arc::new(Tree::default()));
    let below = RewriteLayer::default().layer(GateLayer::default().layer(upstream(&asked, json!({}))));
    let stack = ViewLayer::new(empty).layer(NegotiateLayer::default().layer(below));
    stack.oneshot(request("bob", Method::GET, "/api/v1/namespaces/main/configmaps", "")).await.unwrap();
    assert_eq!(*asked.lock().unwrap(), ["GET /api/v1/namespaces/main/configmaps"]);
}
