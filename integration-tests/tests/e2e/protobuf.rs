//! Metadata in protobuf (issue 21, item 4): a client that accepts only Kubernetes protobuf gets
//! PartialObjectMetadata(List) and their watch events encoded by Canopy from the JSON it
//! translated, read by client-go's own decoder and compared with the apiserver's protobuf answer
//! for the physical namespace; a kind Canopy does not encode is still `406`. Kubernetes has no
//! protobuf encoding of Table (`+protobuf=false`), so a Table asked for in protobuf is answered
//! as the apiserver answers it.

use serde_json::Value;

use crate::common::tenants::*;
use crate::common::*;

const LIST: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// The objects of a `metadata-protobuf` report named `names`, without their namespace.
fn named(report: &Value, names: &[&str]) -> Vec<Value> {
    let mut found: Vec<Value> = report["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| names.contains(&o["name"].as_str().unwrap()))
        .map(|o| serde_json::json!({"name": o["name"], "uid": o["uid"], "labels": o["labels"]}))
        .collect();
    found.sort_by_key(|o| o["name"].as_str().unwrap().to_owned());
    found
}

#[test]
fn metadata_lists_and_watches_are_served_in_protobuf() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let (first, second) = (unique("pb-a"), unique("pb-b"));
    for name in [&first, &second] {
        ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", "acme-web-dev", "create", "configmap", name]));
    }
    ok(kubectl(
        kubectl_bin(),
        admin_kubeconfig(),
        &["-n", "acme-web-dev", "label", "configmap", &first, "tier=web", "x=1"],
    ));

    let through: Value =
        serde_json::from_str(&ok(client_go(&bob, &["metadata-protobuf", "dev", "configmaps"]))).unwrap();
    let direct: Value =
        serde_json::from_str(&ok(client_go(admin_kubeconfig(), &["metadata-protobuf", "acme-web-dev", "configmaps"])))
            .unwrap();
    let names = [first.as_str(), second.as_str()];
    assert_eq!(named(&through, &names).len(), 2, "{through}");
    assert_eq!(named(&through, &names), named(&direct, &names));
    assert!(through["list"].as_array().unwrap().iter().all(|o| o["namespace"] == "dev"), "{through}");
    for name in names {
        assert!(through["watch"].as_array().unwrap().contains(&format!("ADDED dev/{name}").into()), "{through}");
        assert!(direct["watch"].as_array().unwrap().contains(&format!("ADDED acme-web-dev/{name}").into()));
        assert!(through["informer"].as_array().unwrap().contains(&name.into()), "{through}");
    }
}

#[tokio::test]
async fn protobuf_is_canopy_s_own_and_only_for_metadata() {
    let _tree = tree::reading();
    let canopy = canopy();
    let token = Harness::shared().token("bob");
    let url = format!("{}/api/v1/namespaces/dev/configmaps", canopy.url);
    let get = |accept: &'static str| canopy.http().get(&url).bearer_auth(token).header("Accept", accept).send();

    let list = get(LIST).await.unwrap();
    assert_eq!(list.status(), 200);
    assert_eq!(list.headers()["content-type"], "application/vnd.kubernetes.protobuf");
    let bytes = list.bytes().await.unwrap();
    assert!(bytes.starts_with(b"k8s\0"), "{bytes:?}");
    assert!(!bytes.windows(b"acme-web-dev".len()).any(|w| w == b"acme-web-dev"));

    for accept in
        ["application/vnd.kubernetes.protobuf", "application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1"]
    {
        assert_eq!(get(accept).await.unwrap().status(), 406, "{accept}");
    }
}

/// What an answer to a Table request shows of its negotiation: status, content type and kind.
async fn negotiated(answer: reqwest::Response) -> (u16, String, String) {
    let status = answer.status().as_u16();
    let content_type = answer.headers()["content-type"].to_str().unwrap().to_owned();
    let body: Value = answer.json().await.unwrap();
    (status, content_type, body["kind"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_table_asked_for_in_protobuf_is_answered_as_the_apiserver_answers_it() {
    let _tree = tree::reading();
    let canopy = canopy();
    let harness = Harness::shared();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(harness.var("KUBE_CA_FILE")).unwrap()).unwrap();
    let apiserver = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let direct = format!("{}/api/v1/namespaces/acme-web-dev/configmaps", harness.var("KUBE_SERVER"));
    let through = format!("{}/api/v1/namespaces/dev/configmaps", canopy.url);
    const TABLE: &str = "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io";
    for (accept, expected) in [
        (TABLE.to_owned(), (406, "application/json", "Status")),
        (format!("{TABLE}, application/json;as=Table;v=v1;g=meta.k8s.io"), (200, "application/json", "Table")),
        (format!("{TABLE}, application/json"), (200, "application/json", "ConfigMapList")),
    ] {
        let admin = apiserver.get(&direct).bearer_auth(harness.token("admin")).header("Accept", &accept);
        let bob = canopy.http().get(&through).bearer_auth(harness.token("bob")).header("Accept", &accept);
        let (direct, through) =
            (negotiated(admin.send().await.unwrap()).await, negotiated(bob.send().await.unwrap()).await);
        assert_eq!(direct, through, "{accept}");
        assert_eq!((through.0, through.1.as_str(), through.2.as_str()), expected, "{accept}");
    }
}
