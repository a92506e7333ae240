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

/// Upstream answering reviews: records what it was sent, allows, and names `user` if a token
/// review.
fn reviewer(sent: &Arc<Mutex<Vec<(bool, Value)>>>, user: &'static str) -> impl Inner {
    let sent = Arc::clone(sent);
    service_fn(move |request: Request<Body>| {
        let sent = Arc::clone(&sent);
        async move {
            let as_canopy = request.extensions().get::<crate::policy::AsCanopy>().is_some();
            let mut review: Value =
                serde_json::from_slice(&crate::transform::read_bytes(request.into_body()).await?).unwrap();
            sent.lock().unwrap().push((as_canopy, review.clone()));
            review["status"] = json!({"allowed": true, "authenticated": true, "user": {"username": user,
                "groups": ["system:serviceaccounts"], "extra": {"authentication.kubernetes.io/node-name": ["n1"]}}});
            let bytes = serde_json::to_vec(&review).unwrap();
            Ok::<_, Status>(
                Response::builder().header(header::CONTENT_TYPE, "application/json").body(body::full(bytes)).unwrap(),
            )
        }
    })
}

async fn review(who: &str, uri: &str, review: Value, upstream: impl Inner) -> Result<Value, Status> {
    let stack = ViewLayer::new(trees()).layer(RewriteLayer::default().layer(ReviewLayer::default().layer(upstream)));
    Ok(json(stack.oneshot(request(who, Method::POST, uri, &review.to_string())).await?).await)
}

#[tokio::test]
async fn subject_access_reviews_are_asked_by_canopy_in_physical_names_and_answered_virtual() {
    let sent = Arc::default();
    let asked = json!({"kind": "SubjectAccessReview", "spec": {"user": "system:serviceaccount:dev:app",
        "groups": ["system:serviceaccounts:dev"], "resourceAttributes": {"namespace": "dev", "verb": "get", "resource": "configmaps"}}});
    let uri = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let answer = review("bob", uri, asked, reviewer(&sent, "")).await.unwrap();
    assert_eq!(answer["status"]["allowed"], true);
    assert_eq!(answer["spec"]["user"], "system:serviceaccount:dev:app");
    let (as_canopy, upstream) = sent.lock().unwrap()[0].clone();
    assert!(as_canopy);
    assert_eq!(upstream["spec"]["user"], "system:serviceaccount:acme-web-dev:app");
    assert_eq!(upstream["spec"]["groups"][0], "system:serviceaccounts:acme-web-dev");
    assert_eq!(upstream["spec"]["resourceAttributes"]["namespace"], "acme-web-dev");
}

#[tokio::test]
async fn subject_access_reviews_outside_the_view_are_denied_without_upstream() {
    let sent = Arc::default();
    let uri = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let elsewhere = json!({"spec": {"user": "u", "resourceAttributes": {"namespace": "main", "verb": "get", "resource": "configmaps"}}});
    let answer = review("bob", uri, elsewhere, reviewer(&sent, "")).await.unwrap();
    assert_eq!(answer["status"]["allowed"], false);
    let other_subject = json!({"spec": {"user": "system:serviceaccount:main:app", "resourceAttributes": {"namespace": "dev", "verb": "get", "resource": "configmaps"}}});
    let answer = review("bob", uri, other_subject, reviewer(&sent, "")).await.unwrap();
    assert_eq!(answer["status"]["allowed"], false);
    let beyond_ceiling = json!({"spec": {"user": "u", "resourceAttributes": {"namespace": "warehouse", "verb": "delete", "resource": "configmaps"}}});
    let answer = review("alice", uri, beyond_ceiling, reviewer(&sent, "")).await.unwrap();
    assert_eq!(answer["status"]["allowed"], false);
    assert!(sent.lock().unwrap().is_empty());
    let local = "/apis/authorization.k8s.io/v1/namespaces/dev/localsubjectaccessreviews";
    let mismatched =
        json!({"spec": {"user": "u", "resourceAttributes": {"namespace": "prod", "verb": "get", "resource": "pods"}}});
    assert_eq!(review("bob", local, mismatched, reviewer(&sent, "")).await.unwrap_err().code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn token_reviews_name_users_of_the_view_virtually_and_no_one_else() {
    let sent = Arc::default();
    let uri = "/apis/authentication.k8s.io/v1/tokenreviews";
    let asked = json!({"kind": "TokenReview", "spec": {"token": "t"}});
    let answer =
        review("bob", uri, asked.clone(), reviewer(&sent, "system:serviceaccount:acme-web-dev:app")).await.unwrap();
    assert_eq!(answer["status"]["user"]["username"], "system:serviceaccount:dev:app");
    assert_eq!(answer["status"]["user"]["extra"], json!({}));
    let answer = review("bob", uri, asked, reviewer(&sent, "system:serviceaccount:globex-main:app")).await.unwrap();
    assert_eq!(answer["status"]["authenticated"], false);
    assert!(!answer.to_string().contains("globex"));
    assert!(sent.lock().unwrap().iter().all(|(as_canopy, _)| *as_canopy));
}
