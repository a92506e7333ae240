//! `-A` through a view, against the real apiserver: lists and watches of a namespaced resource
//! span exactly the view's namespaces — with kubectl (plain, chunked, field selectors), raw
//! HTTP pages with continue tokens, and kube-rs's watcher — and never show another tenant's.
//! Large lists spread over several namespaces arrive whole, each object once, at any chunk size,
//! as objects and as Tables.

use std::path::Path;
use std::time::Duration;

use crate::common::tenants::*;
use crate::common::*;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;

/// Creates a ConfigMap as the platform admin in a physical namespace.
/// The JSON answer to `request`.
async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

fn admin_configmap(physical: &str, name: &str) {
    let admin = Path::new(Harness::shared().var("ADMIN_KUBECONFIG"));
    ok(kubectl(kubectl_bin(), admin, &["-n", physical, "create", "configmap", name]));
}

#[test]
fn kubectl_lists_across_the_views_namespaces_only() {
    let _tree = tree::reading();
    let canopy = canopy();
    let (dev, prod, main) = (unique("a-dev"), unique("a-prod"), unique("a-main"));
    admin_configmap("acme-web-dev", &dev);
    admin_configmap("acme-web-prod", &prod);
    admin_configmap("globex-main", &main);
    let bob = as_user(&canopy, "bob");
    for bin in Harness::shared().kubectls() {
        for chunk in ["500", "1"] {
            let listed = ok(kubectl(&bin, &bob, &["get", "configmaps", "-A", "--chunk-size", chunk]));
            assert!(listed.contains(&dev) && listed.contains(&prod), "{listed}");
            assert!(!listed.contains(&main) && !listed.contains("globex") && !listed.contains("acme-"), "{listed}");
            let row = listed.lines().find(|l| l.contains(&dev)).unwrap();
            assert!(row.starts_with("dev "), "{row}");
        }
        let only_prod = ok(kubectl(
            &bin,
            &bob,
            &["get", "configmaps", "-A", "--field-selector", "metadata.namespace=prod", "-o", "name"],
        ));
        assert!(only_prod.contains(&prod) && !only_prod.contains(&dev), "{only_prod}");
        let elsewhere = ok(kubectl(
            &bin,
            &bob,
            &["get", "configmaps", "-A", "--field-selector", "metadata.namespace=globex-main", "-o", "name"],
        ));
        assert!(elsewhere.trim().is_empty(), "{elsewhere}");
        // Alice in view acme sees the whole subtree under names relative to acme.
        let alice = ok(kubectl(&bin, &in_view(&canopy, "alice", "acme"), &["get", "configmaps", "-A"]));
        assert!(alice.lines().any(|l| l.starts_with("web-dev ") && l.contains(&dev)), "{alice}");
        assert!(!alice.contains(&main), "{alice}");
    }
}

/// The physical namespaces of view `acme` and their names there.
const ACME: [(&str, &str); 3] =
    [("acme-web-dev", "web-dev"), ("acme-web-prod", "web-prod"), ("acme-data-warehouse", "data-warehouse")];

/// Creates `count` ConfigMaps of about `size` bytes each in a physical namespace, in one request;
/// returns their names.
fn admin_configmaps(physical: &str, prefix: &str, count: usize, size: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let items: Vec<serde_json::Value> = names
        .iter()
        .map(|name| {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"bulk": prefix}},
                "data": {"payload": "x".repeat(size)}})
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let admin = Path::new(Harness::shared().var("ADMIN_KUBECONFIG"));
    ok(kubectl_stdin(kubectl_bin(), admin, &["-n", physical, "create", "-f", "-"], Some(&list)));
    names
}

/// `(namespace, name)` of each line of kubectl's output whose name is `prefix-…`, the namespace
/// in column 0 and the name in column 1.
fn listed_rows(text: &str, prefix: &str) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            Some((columns.next()?.to_owned(), columns.next()?.to_owned()))
        })
        .filter(|(_, name)| name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('-')))
        .collect();
    rows.sort();
    rows
}

#[test]
fn large_lists_across_namespaces_arrive_whole_at_any_chunk_size() {
    let _tree = tree::reading();
    let canopy = canopy();
    let prefix = unique("bulk");
    // About 120 KB per namespace: several output chunks, many upstream frames per page.
    let mut expected: Vec<(String, String)> = ACME
        .iter()
        .flat_map(|(physical, virtual_name)| {
            admin_configmaps(physical, &prefix, 40, 3000).into_iter().map(|name| ((*virtual_name).to_owned(), name))
        })
        .collect();
    expected.sort();
    let alice = in_view(&canopy, "alice", "acme");
    for bin in Harness::shared().kubectls() {
        // (Chunks of 1 are tested above: here they would mostly measure kubectl's own rate limit.)
        for chunk in ["0", "7", "40", "500"] {
            let objects = ok(kubectl(
                &bin,
                &alice,
                &[
                    "get",
                    "configmaps",
                    "-A",
                    "--chunk-size",
                    chunk,
                    "-o",
                    "custom-columns=NS:.metadata.namespace,NAME:.metadata.name",
                    "--no-headers",
                ],
            ));
            assert_eq!(listed_rows(&objects, &prefix), expected, "objects, chunks of {chunk}");
            // The default output: a Table, its rows merged across namespaces.
            let table = ok(kubectl(&bin, &alice, &["get", "configmaps", "-A", "--chunk-size", chunk]));
            assert!(table.starts_with("NAMESPACE ") && table.lines().next().unwrap().contains(" DATA "), "{table}");
            assert_eq!(listed_rows(&table, &prefix), expected, "Table, chunks of {chunk}");
            assert!(!table.contains("acme-") && !objects.contains("acme-"));
        }
    }
    let admin = Path::new(Harness::shared().var("ADMIN_KUBECONFIG"));
    for (physical, _) in ACME {
        ok(kubectl(kubectl_bin(), admin, &["-n", physical, "delete", "configmaps", "-l", &format!("bulk={prefix}")]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_across_namespaces_answer_as_one_table() {
    let _tree = tree::reading();
    let canopy = canopy();
    let prefix = unique("tpod");
    let admin = Path::new(Harness::shared().var("ADMIN_KUBECONFIG"));
    let mut expected = Vec::new();
    for (physical, virtual_name) in ACME {
        for i in 0..2 {
            let name = format!("{prefix}-{i}");
            let image = "--image=registry.invalid/idle";
            ok(kubectl(kubectl_bin(), admin, &["-n", physical, "run", &name, image, "--restart=Never"]));
            expected.push((virtual_name.to_owned(), name));
        }
    }
    expected.sort();
    let alice = in_view(&canopy, "alice", "acme");
    for bin in Harness::shared().kubectls() {
        for args in [vec!["get", "pods", "-A"], vec!["get", "pods", "-A", "--chunk-size", "1"]] {
            let table = ok(kubectl(&bin, &alice, &args));
            let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
            assert_eq!(header[..4], ["NAMESPACE", "NAME", "READY", "STATUS"], "{args:?}: {table}");
            assert_eq!(listed_rows(&table, &prefix), expected, "{args:?}: {table}");
            assert!(!table.contains("acme-"), "{table}");
        }
    }
    // The merged answer is one Table: the column definitions once, every namespace's rows.
    let table = json_of(
        canopy
            .http()
            .get(format!("{}/v/acme/api/v1/pods", canopy.url))
            .bearer_auth(Harness::shared().token("alice"))
            .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"),
    )
    .await;
    assert_eq!(table["kind"], "Table", "{table}");
    assert!(table["columnDefinitions"].as_array().is_some_and(|c| !c.is_empty()), "{table}");
    let rows = table["rows"].as_array().unwrap();
    for (namespace, name) in &expected {
        let here = |r: &&serde_json::Value| {
            r["cells"][0] == *name.as_str() && r["object"]["metadata"]["namespace"] == *namespace.as_str()
        };
        let found = rows.iter().filter(here).count();
        assert_eq!(found, 1, "{namespace}/{name} once in {table}");
    }
    assert!(table["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()), "{table}");
    for (physical, _) in ACME {
        let names: Vec<String> = (0..2).map(|i| format!("{prefix}-{i}")).collect();
        let args: Vec<&str> = ["-n", physical, "delete", "pods", "--wait=false"]
            .into_iter()
            .chain(names.iter().map(String::as_str))
            .collect();
        ok(kubectl(kubectl_bin(), admin, &args));
    }
}

#[test]
fn a_role_that_cannot_read_a_resource_anywhere_is_refused() {
    let _tree = tree::reading();
    let canopy = canopy();
    // Carol is `view` at acme/data: the view role reads no secrets.
    let refused = fails(kubectl(kubectl_bin(), &as_user(&canopy, "carol"), &["get", "secrets", "-A"]));
    assert!(refused.contains("(Forbidden)") && !refused.contains("acme-data"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_share_one_snapshot_and_cover_every_object() {
    let _tree = tree::reading();
    let canopy = canopy();
    let names: Vec<String> = (0..3).map(|i| unique(&format!("page{i}"))).collect();
    for (i, name) in names.iter().enumerate() {
        admin_configmap(if i % 2 == 0 { "acme-web-dev" } else { "acme-web-prod" }, name);
    }
    let http = canopy.http();
    let token = Harness::shared().token("bob");
    let (mut seen, mut next, mut versions) = (Vec::new(), None::<String>, Vec::new());
    loop {
        let mut url = format!("{}/api/v1/configmaps?limit=2", canopy.url);
        if let Some(token) = &next {
            url.push_str(&format!("&continue={token}"));
        }
        let page: serde_json::Value = http.get(&url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["kind"], "ConfigMapList", "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        for item in items {
            let namespace = item["metadata"]["namespace"].as_str().unwrap();
            assert!(matches!(namespace, "dev" | "prod"), "{item}");
            seen.push(item["metadata"]["name"].as_str().unwrap().to_owned());
        }
        versions.push(page["metadata"]["resourceVersion"].as_str().unwrap().to_owned());
        match page["metadata"]["continue"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    versions.dedup();
    assert_eq!(versions.len(), 1, "every page is read at one resourceVersion: {versions:?}");
    for name in &names {
        assert_eq!(seen.iter().filter(|s| *s == name).count(), 1, "{name} once in {seen:?}");
    }
    let bad = http.get(format!("{}/api/v1/configmaps?limit=2&continue=garbage", canopy.url)).bearer_auth(token);
    let bad = bad.send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_span_the_view_and_resume_without_loss() {
    let _tree = tree::reading();
    let canopy = canopy();
    let http = canopy.http();
    let token = Harness::shared().token("bob");
    let list = json_of(http.get(format!("{}/api/v1/configmaps", canopy.url)).bearer_auth(token)).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    // Created after the list, before the watch starts: a watch from the list's version sees them.
    let (dev, prod, main) = (unique("w-dev"), unique("w-prod"), unique("w-main"));
    admin_configmap("acme-web-dev", &dev);
    admin_configmap("globex-main", &main);
    let url = format!("{}/api/v1/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={rv}", canopy.url);
    let response = http.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    admin_configmap("acme-web-prod", &prod);
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(&dev) && seen.contains(&prod) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
    for line in seen.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let namespace = event["object"]["metadata"]["namespace"].as_str().unwrap_or("");
        assert!(matches!(namespace, "dev" | "prod" | ""), "{line}");
    }
    assert!(!seen.contains(&main) && !seen.contains("globex") && !seen.contains("acme-"), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_lists_and_watches_all_namespaces() {
    let _tree = tree::reading();
    let canopy = canopy();
    let kubeconfig = kube::config::Kubeconfig::read_from(as_user(&canopy, "bob")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let all: Api<ConfigMap> = Api::all(client);
    let name = unique("kube-rs");
    admin_configmap("acme-web-prod", &name);
    let listed = all.list(&ListParams::default()).await.unwrap();
    assert!(listed.items.iter().any(|cm| cm.metadata.name.as_deref() == Some(name.as_str())));
    assert!(listed.items.iter().all(|cm| matches!(cm.metadata.namespace.as_deref(), Some("dev" | "prod"))));

    // The watcher lists, then watches from the list's version (streaming lists where offered).
    // `later` is created once the initial list is complete, so only the watch can bring it.
    let later = unique("kube-rs-later");
    let mut events = watcher(all, watcher::Config::default()).boxed();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            let applied = match event.unwrap() {
                watcher::Event::InitDone => {
                    admin_configmap("acme-web-dev", &later);
                    continue;
                }
                watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => cm,
                _ => continue,
            };
            assert!(matches!(applied.metadata.namespace.as_deref(), Some("dev" | "prod")), "{applied:?}");
            if applied.metadata.name.as_deref() == Some(later.as_str()) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true));
}
