//! Authentication and identity through Canopy: TokenReview, static tokens, client certificates,
//! 401s, refused impersonation and `Connection` smuggling, and kube-rs as a client.

use crate::common::*;
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

fn assert_status(body: &str, code: u16, reason: &str) -> serde_json::Value {
    let status: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(status["kind"], "Status", "{body}");
    assert_eq!(status["code"], code, "{body}");
    assert_eq!(status["reason"], reason, "{body}");
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_bad_tokens_get_401_status() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let http = canopy.http();
    let url = format!("{}/api/v1/namespaces", canopy.url);
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_status(&response.text().await.unwrap(), 401, "Unauthorized");
    for _ in 0..2 {
        // The second refusal comes from the negative cache; the answer is the same.
        let response = http.get(&url).bearer_auth("not-a-token").send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_status(&response.text().await.unwrap(), 401, "Unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_impersonation_headers_are_refused() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let http = canopy.http();
    let url = format!("{}/api/v1/namespaces/kube-system/secrets", canopy.url);
    for (name, value) in
        [("Impersonate-User", "admin"), ("Impersonate-Group", "system:masters"), ("Impersonate-Uid", "0")]
    {
        let response = http.get(&url).bearer_auth(harness.token("nobody")).header(name, value).send().await.unwrap();
        assert_eq!(response.status(), 403, "{name}");
        let status = assert_status(&response.text().await.unwrap(), 403, "Forbidden");
        assert!(status["message"].as_str().unwrap().to_lowercase().contains(&name.to_lowercase()), "{status}");
    }
}

/// A proxy that strips the headers named in `Connection` after adding its own would drop its
/// `Impersonate-User` and run the request as itself.
#[tokio::test(flavor = "multi_thread")]
async fn connection_header_cannot_smuggle_away_impersonation() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    // `Connection` is an HTTP/1.1 header (HTTP/2 forbids it), so speak HTTP/1.1.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&canopy.ca_file).unwrap()).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(ca).http1_only().build().unwrap();
    let url = format!("{}/api/v1/namespaces/kube-system/secrets", canopy.url);
    for smuggled in ["Impersonate-User", "impersonate-group, Impersonate-User", "Authorization"] {
        let response =
            http.get(&url).bearer_auth(harness.token("nobody")).header("Connection", smuggled).send().await.unwrap();
        let body = response.text().await.unwrap();
        let status = assert_status(&body, 403, "Forbidden");
        assert!(status["message"].as_str().unwrap().contains("Connection header"), "{smuggled}: {body}");
    }
    // A harmless Connection token is dropped, and the request runs as the caller.
    let response = http
        .get(&url)
        .bearer_auth(harness.token("nobody"))
        .header("Connection", "X-Trace")
        .header("X-Trace", "1")
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    assert!(body.contains("User \\\"nobody\\\" cannot list resource \\\"secrets\\\""), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn static_token_users_are_impersonated() {
    let harness = Harness::shared();
    let options =
        Options { static_tokens: Some("dev-token-1,frank,f-1,\"devs,testers\"\n".into()), ..Default::default() };
    let canopy = Canopy::start_with(harness, options);
    let response = canopy
        .http()
        .get(format!("{}/api/v1/namespaces/default/pods", canopy.url))
        .bearer_auth("dev-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let status = assert_status(&response.text().await.unwrap(), 403, "Forbidden");
    assert!(status["message"].as_str().unwrap().contains("User \"frank\""), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_carry_user_and_groups() {
    let harness = Harness::shared();
    let canopy = Canopy::start_with(harness, Options { client_ca: true, ..Default::default() });
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&canopy.ca_file).unwrap()).unwrap();
    let client =
        |identity| reqwest::Client::builder().add_root_certificate(ca.clone()).identity(identity).build().unwrap();
    let url = format!("{}/api/v1/namespaces/default/pods", canopy.url);

    let response = client(client_identity(harness, "grace", Some("devs"))).get(&url).send().await.unwrap();
    let status = assert_status(&response.text().await.unwrap(), 403, "Forbidden");
    assert!(status["message"].as_str().unwrap().contains("User \"grace\""), "{status}");

    // The O= group reaches the apiserver: system:masters may list.
    let response = client(client_identity(harness, "heidi", Some("system:masters"))).get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_client_works_through_canopy() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let kubeconfig = kube::config::Kubeconfig::read_from(canopy.kubeconfig("admin", harness.token("admin"))).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();

    let ns = unique("kube-rs");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let mut events = cms.watch(&WatchParams::default().timeout(30), "0").await.unwrap().boxed();
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "rs"}, "data": {"k": "v"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let patch = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k2": "v2"}});
    cms.patch("rs", &PatchParams::apply("e2e"), &Patch::Apply(&patch)).await.unwrap();
    let got = cms.get("rs").await.unwrap();
    assert_eq!(got.data.unwrap().get("k2").map(String::as_str), Some("v2"));
    assert!(
        cms.list(&ListParams::default()).await.unwrap().items.iter().any(|c| c.metadata.name.as_deref() == Some("rs"))
    );

    let added = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Some(event) = events.try_next().await.unwrap() {
            if let WatchEvent::Added(cm) = event
                && cm.metadata.name.as_deref() == Some("rs")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(added, Ok(true), "the watch never delivered the ADDED event");
    cms.delete("rs", &Default::default()).await.unwrap();
    namespaces.delete(&ns, &Default::default()).await.unwrap();
}
