//! The list merge end to end over a fake upstream: pages cut into small frames, Tables, pages that
//! take the whole path, refusals, failures mid-list and continue tokens.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};

use super::FanOut;
use crate::body::{self, Body, BoxError};
use crate::fuzz::example_tree;
use crate::request::RequestInfo;
use crate::status::Status;
use crate::transform::Translation;

const NAMESPACES: [&str; 2] = ["acme-web-dev", "acme-web-prod"];

/// What the fake upstream answers in each namespace: status and body, sent in 7-byte frames, and
/// an error that breaks the body after them.
type Answers = Arc<HashMap<&'static str, (StatusCode, Vec<u8>, Option<&'static str>)>>;

fn fan(query: &[(&str, &str)], accept: &str) -> FanOut {
    let tree = example_tree().expect("the example tree");
    let view = tree.node("acme/web").expect("a node of the example");
    let mut headers = http::HeaderMap::new();
    headers.insert(header::ACCEPT, accept.parse().expect("a header value"));
    FanOut {
        namespaces: NAMESPACES.iter().map(|n| (*n).to_owned()).collect(),
        info: RequestInfo::parse(&Method::GET, "/api/v1/pods", None).expect("a list path"),
        identity: Default::default(),
        headers,
        query: query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        translation: Translation {
            tree,
            view,
            namespace: None,
            watch: false,
            namespaces: false,
            secrets: None,
            mask: None,
        },
    }
}

/// A body sent in frames of 7 bytes, ending with `error` if given.
fn framed(bytes: &[u8], error: Option<&str>) -> Body {
    let mut frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> =
        bytes.chunks(7).map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
    if let Some(error) = error {
        frames.push(Err(error.into()));
    }
    body::boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

/// The merged answer: status and body, or the error that broke the body.
async fn merged(fan: FanOut, answers: Answers) -> (StatusCode, Result<Value, String>) {
    let inner = tower::service_fn(move |request: Request<Body>| {
        let answers = answers.clone();
        async move {
            let path = request.uri().path().to_owned();
            let namespace = NAMESPACES.iter().find(|n| path.contains(*n)).expect("a namespace");
            let (status, bytes, error) = answers.get(namespace).cloned().expect("an answer");
            let response = Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .body(framed(&bytes, error))
                .map_err(|e| Status::internal(e.to_string()))?;
            Ok::<_, Status>(response)
        }
    });
    let response = match fan.serve(inner).await {
        Ok(response) => response,
        Err(status) => status.into_response(),
    };
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(collected) => serde_json::from_slice(&collected.to_bytes()).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    (status, body)
}

fn pod(name: &str, namespace: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": namespace}, "spec": {"containers": [{"name": "c"}]}})
}

/// A pod list as the apiserver writes it: kind, apiVersion and metadata before the items.
fn pod_list(rv: &str, continue_token: &str, pods: &[Value]) -> Vec<u8> {
    let items: Vec<String> = pods.iter().map(Value::to_string).collect();
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"{rv}","continue":"{continue_token}"}},"items":[{}]}}"#,
        items.join(",")
    )
    .into_bytes()
}

fn ok(body: Vec<u8>) -> (StatusCode, Vec<u8>, Option<&'static str>) {
    (StatusCode::OK, body, None)
}

fn status(code: StatusCode) -> (StatusCode, Vec<u8>, Option<&'static str>) {
    (
        code,
        format!(r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","code":{}}}"#, code.as_u16()).into_bytes(),
        None,
    )
}

fn names(answer: &Value, key: &str) -> Vec<String> {
    let items = answer[key].as_array().expect("an array");
    items
        .iter()
        .map(|i| format!("{}/{}", i["metadata"]["namespace"].as_str().unwrap_or(""), i["metadata"]["name"]))
        .collect()
}

#[tokio::test]
async fn pages_stream_into_one_list_in_view_terms() {
    let dev = pod_list("10", "", &[pod("a", "acme-web-dev"), pod("b", "acme-web-dev")]);
    let prod = pod_list("10", "", &[pod("c", "acme-web-prod")]);
    let answers = Arc::new(HashMap::from([(NAMESPACES[0], ok(dev)), (NAMESPACES[1], ok(prod))]));
    let (status, answer) = merged(fan(&[], "application/json"), answers).await;
    let answer = answer.expect("a JSON list");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["kind"], "PodList");
    assert_eq!(names(&answer, "items"), [r#"dev/"a""#, r#"dev/"b""#, r#"prod/"c""#]);
    assert_eq!(answer["metadata"], json!({"resourceVersion": "10"}));
}

#[tokio::test]
async fn tables_merge_their_rows_under_one_set_of_columns() {
    let table = |namespace: &str, name: &str| {
        let mut object = pod(name, namespace);
        object["kind"] = json!("PartialObjectMetadata");
        format!(
            r#"{{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{{"resourceVersion":"4"}},"columnDefinitions":[{{"name":"Name"}}],"rows":[{}]}}"#,
            json!({"cells": [name], "object": object})
        )
        .into_bytes()
    };
    let answers = Arc::new(HashMap::from([
        (NAMESPACES[0], ok(table("acme-web-dev", "a"))),
        (NAMESPACES[1], ok(table("acme-web-prod", "b"))),
    ]));
    let (_, answer) = merged(fan(&[], "application/json;as=Table;v=v1;g=meta.k8s.io"), answers).await;
    let answer = answer.expect("a Table");
    assert_eq!(answer["kind"], "Table");
    assert_eq!(answer["columnDefinitions"], json!([{"name": "Name"}]));
    let rows: Vec<String> = answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| format!("{}/{}", r["object"]["metadata"]["namespace"].as_str().unwrap_or(""), r["cells"][0]))
        .collect();
    assert_eq!(rows, [r#"dev/"a""#, r#"prod/"b""#]);
}

#[tokio::test]
async fn a_list_written_items_first_is_merged_whole() {
    let dev =
        format!(r#"{{"items":[{}],"kind":"PodList","metadata":{{"resourceVersion":"3"}}}}"#, pod("a", "acme-web-dev"));
    let prod = pod_list("3", "", &[pod("b", "acme-web-prod")]);
    let answers = Arc::new(HashMap::from([(NAMESPACES[0], ok(dev.into_bytes())), (NAMESPACES[1], ok(prod))]));
    let (_, answer) = merged(fan(&[], "application/json"), answers).await;
    let answer = answer.expect("a JSON list");
    assert_eq!(names(&answer, "items"), [r#"dev/"a""#, r#"prod/"b""#]);
    assert_eq!(answer["metadata"]["resourceVersion"], "3");
}

#[tokio::test]
async fn an_answer_that_is_not_a_list_is_a_bad_gateway() {
    let object = pod("a", "acme-web-dev").to_string().into_bytes();
    let answers = Arc::new(HashMap::from([(NAMESPACES[0], ok(object.clone())), (NAMESPACES[1], ok(object))]));
    let (status, answer) = merged(fan(&[], "application/json"), answers).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let answer = answer.expect("a Status");
    assert_eq!(answer["kind"], "Status");
    assert!(!answer.to_string().contains("acme-"), "{answer}");
}

#[tokio::test]
async fn refused_namespaces_are_skipped_unless_none_answers() {
    let forbidden = status(StatusCode::FORBIDDEN);
    let answers = Arc::new(HashMap::from([
        (NAMESPACES[0], forbidden.clone()),
        (NAMESPACES[1], ok(pod_list("8", "", &[pod("c", "acme-web-prod")]))),
    ]));
    let (_, answer) = merged(fan(&[], "application/json"), answers).await;
    assert_eq!(names(&answer.expect("a list"), "items"), [r#"prod/"c""#]);
    let answers = Arc::new(HashMap::from([(NAMESPACES[0], forbidden.clone()), (NAMESPACES[1], forbidden)]));
    let (status, _) = merged(fan(&[], "application/json"), answers).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_failure_after_the_first_page_breaks_the_stream() {
    let failure = status(StatusCode::INTERNAL_SERVER_ERROR);
    let answers = Arc::new(HashMap::from([
        (NAMESPACES[0], ok(pod_list("8", "", &[pod("a", "acme-web-dev")]))),
        (NAMESPACES[1], failure.clone()),
    ]));
    let (status, answer) = merged(fan(&[], "application/json"), answers).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.expect_err("a broken body").contains("500"));
    // The same failure first is the answer itself.
    let answers = Arc::new(HashMap::from([(NAMESPACES[0], failure.clone()), (NAMESPACES[1], failure)]));
    let (status, _) = merged(fan(&[], "application/json"), answers).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_page_cut_short_breaks_the_stream() {
    let mut truncated = pod_list("8", "", &[pod("b", "acme-web-prod"), pod("c", "acme-web-prod")]);
    truncated.truncate(truncated.len() - 20);
    let mut broken = truncated.clone();
    broken.truncate(broken.len() - 20);
    for cut in [ok(truncated), (StatusCode::OK, broken, Some("connection reset"))] {
        let answers = Arc::new(HashMap::from([
            (NAMESPACES[0], ok(pod_list("8", "", &[pod("a", "acme-web-dev")]))),
            (NAMESPACES[1], cut),
        ]));
        let (status, answer) = merged(fan(&[], "application/json"), answers).await;
        assert_eq!(status, StatusCode::OK);
        assert!(answer.is_err(), "{answer:?}");
    }
    // Cut in the first namespace, before anything was sent: a 502 Status.
    let mut first = pod_list("8", "", &[pod("a", "acme-web-dev")]);
    first.truncate(10);
    let answers = Arc::new(HashMap::from([
        (NAMESPACES[0], (StatusCode::OK, first, Some("connection reset"))),
        (NAMESPACES[1], ok(pod_list("8", "", &[]))),
    ]));
    let (status, answer) = merged(fan(&[], "application/json"), answers).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer:?}");
}

#[tokio::test]
async fn continue_tokens_carry_the_namespace_and_its_upstream_token() {
    // The upstream token arrives before the items, as the apiserver writes it, or after them.
    let after = format!(
        r#"{{"kind":"PodList","items":[{}],"metadata":{{"resourceVersion":"5","continue":"up"}}}}"#,
        pod("a", "acme-web-dev")
    );
    for dev in [pod_list("5", "up", &[pod("a", "acme-web-dev")]), after.into_bytes()] {
        let answers = Arc::new(HashMap::from([(NAMESPACES[0], ok(dev)), (NAMESPACES[1], ok(pod_list("5", "", &[])))]));
        let (_, answer) = merged(fan(&[("limit", "1")], "application/json"), answers).await;
        let answer = answer.expect("a list");
        assert_eq!(names(&answer, "items"), [r#"dev/"a""#]);
        let token = answer["metadata"]["continue"].as_str().expect("a continue token");
        let token = super::list::Token::decode(token).expect("decodes");
        assert_eq!((token.n, token.c.as_str(), token.rv.as_str()), (0, "up", "5"));
    }
    // A namespace that fills the limit exactly hands on to the next one.
    let answers = Arc::new(HashMap::from([
        (NAMESPACES[0], ok(pod_list("5", "", &[pod("a", "acme-web-dev")]))),
        (NAMESPACES[1], ok(pod_list("5", "", &[]))),
    ]));
    let (_, answer) = merged(fan(&[("limit", "1")], "application/json"), answers).await;
    let token = answer.expect("a list")["metadata"]["continue"].as_str().map(super::list::Token::decode);
    let token = token.expect("a continue token").expect("decodes");
    assert_eq!((token.n, token.c.as_str()), (1, ""));
}

/// A pod list whose metadata carries `continue` and, if given, `remainingItemCount`.
fn counted_list(continue_token: &str, count: Option<u64>, pods: &[Value]) -> Vec<u8> {
    let mut metadata = json!({"resourceVersion": "5", "continue": continue_token});
    if let Some(count) = count {
        metadata["remainingItemCount"] = count.into();
    }
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": pods}).to_string().into_bytes()
}

#[tokio::test]
async fn paged_lists_count_the_items_after_them_where_upstream_does() {
    let count = |dev: Vec<u8>, prod: Vec<u8>| async move {
        let answers = Arc::new(HashMap::from([(NAMESPACES[0], ok(dev)), (NAMESPACES[1], ok(prod))]));
        let (_, answer) = merged(fan(&[("limit", "1")], "application/json"), answers).await;
        let answer = answer.expect("a list");
        assert!(answer["metadata"]["continue"].is_string(), "{answer}");
        answer["metadata"].get("remainingItemCount").cloned()
    };
    let (a, b, c) = (pod("a", "acme-web-dev"), pod("b", "acme-web-prod"), pod("c", "acme-web-prod"));
    // Three more in dev after its page, and prod's `limit=1` page: one item and four after it.
    let prod = counted_list("x", Some(4), std::slice::from_ref(&b));
    assert_eq!(count(counted_list("up", Some(3), std::slice::from_ref(&a)), prod.clone()).await, Some(json!(8)));
    // Dev's page ends its namespace: prod's items alone.
    let small = counted_list("", None, &[b.clone(), c]);
    assert_eq!(count(counted_list("", None, std::slice::from_ref(&a)), small).await, Some(json!(2)));
    // Upstream does not count (a selector): neither does Canopy.
    assert_eq!(count(counted_list("up", None, std::slice::from_ref(&a)), prod).await, None);
    let uncounted = counted_list("x", None, &[b]);
    assert_eq!(count(counted_list("up", Some(3), &[a]), uncounted).await, None);
}
