//! `-A` through a view, against the real apiserver: lists and watches of a namespaced resource
//! span exactly the view's namespaces — with kubectl (plain, chunked, field selectors), raw
//! HTTP pages with continue tokens, and kube-rs's watcher — and never show another tenant's.

mod common;

use std::path::Path;
use std::time::Duration;

use common::tenants::*;
use common::*;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;

/// Creates a ConfigMap as the platform admin in a physical namespace.
fn admin_configmap(physical: &str, name: &str) {
    let admin = Path::new(Harness::shared().var("ADMIN_KUBECONFIG"));
    ok(kubectl(kubectl_bin(), admin, &["-n", physical, "create", "configmap", name]));
}

#[test]
fn kubectl_lists_across_the_views_namespaces_only() {
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

#[test]
fn a_role_that_cannot_read_a_resource_anywhere_is_refused() {
    let canopy = canopy();
    // Carol is `view` at acme/data: the view role reads no secrets.
    let refused = fails(kubectl(kubectl_bin(), &as_user(&canopy, "carol"), &["get", "secrets", "-A"]));
    assert!(refused.contains("(Forbidden)") && !refused.contains("acme-data"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_share_one_snapshot_and_cover_every_object() {
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
    let canopy = canopy();
    let http = canopy.http();
    let token = Harness::shared().token("bob");
    let list: serde_json::Value = http
        .get(format!("{}/api/v1/configmaps", canopy.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let later = unique("kube-rs-later");
    let mut events = watcher(all, watcher::Config::default()).boxed();
    let created = tokio::spawn({
        let later = later.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            admin_configmap("acme-web-dev", &later);
        }
    });
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            let applied = match event.unwrap() {
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
    created.await.unwrap();
    assert_eq!(found, Ok(true));
}
