//! Scope as the apiserver's discovery gives it, each answer compared with the physical request
//! sent to the apiserver as admin: a cluster-scoped custom resource is cluster-scoped in a view
//! (not "name a namespace"), a namespaced one's `-A` is the view's fan-out; every subresource
//! passes the ceiling's `subresources` but those the resource's verbs cover; paged `-A` lists count
//! what follows them as the apiserver counts one namespace; `canopy who-can` reads scope as the
//! request path does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::tenants::*;
use crate::common::*;

fn admin() -> &'static Path {
    admin_kubeconfig()
}

/// Cluster objects (`crd/<name>`, `clusterrole/<name>`) created as admin, deleted when dropped.
struct Created(Vec<String>);

impl Drop for Created {
    fn drop(&mut self) {
        for object in &self.0 {
            let _ = kubectl(kubectl_bin(), admin(), &["delete", object, "--wait=false"]);
        }
    }
}

/// Creates the CRD `<plural>.<group>` (kind `kind`) with `scope` and waits until it is served.
fn crd(group: &str, plural: &str, kind: &str, scope: &str) -> String {
    let name = format!("{plural}.{group}");
    let manifest = format!(
        r#"{{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
        "metadata":{{"name":"{name}"}},
        "spec":{{"group":"{group}","scope":"{scope}",
            "names":{{"plural":"{plural}","singular":"{}","kind":"{kind}"}},
            "versions":[{{"name":"v1","served":true,"storage":true,
                "schema":{{"openAPIV3Schema":{{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}}]}}}}"#,
        kind.to_lowercase()
    );
    ok(kubectl_stdin(kubectl_bin(), admin(), &["create", "-f", "-"], Some(&manifest)));
    ok(kubectl(
        kubectl_bin(),
        admin(),
        &["wait", "--for=condition=Established", &format!("crd/{name}"), "--timeout=30s"],
    ));
    format!("crd/{name}")
}

/// A ClusterRole that the built-in `admin` role aggregates: `group`'s `resource` may be read
/// wherever a member is admin (dave in globex-main).
fn readable_by_admins(group: &str, resource: &str) -> String {
    let name = unique("scope-e2e");
    let manifest = format!(
        r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole",
        "metadata":{{"name":"{name}","labels":{{"rbac.authorization.k8s.io/aggregate-to-admin":"true"}}}},
        "rules":[{{"apiGroups":["{group}"],"resources":["{resource}"],"verbs":["get","list","watch"]}}]}}"#
    );
    ok(kubectl_stdin(kubectl_bin(), admin(), &["create", "-f", "-"], Some(&manifest)));
    format!("clusterrole/{name}")
}

fn object(group: &str, kind: &str, name: &str) -> String {
    format!(r#"{{"apiVersion":"{group}/v1","kind":"{kind}","metadata":{{"name":"{name}"}}}}"#)
}

#[test]
fn cluster_scoped_custom_resources_take_their_scope_from_discovery() {
    let _tree = tree::reading();
    let group = format!("{}.scope.canopy.test", unique("g"));
    let _created = Created(vec![
        crd(&group, "gadgets", "Gadget", "Cluster"),
        crd(&group, "doohickeys", "Doohickey", "Namespaced"),
        readable_by_admins(&group, "doohickeys"),
    ]);
    let canopy = canopy();
    // dave's ceiling allows every namespaced resource of every group, and reads only nodes of
    // the cluster-scoped ones.
    let dave = as_user(&canopy, "dave");
    let gadget = object(&group, "Gadget", &unique("gadget"));
    ok(kubectl_stdin(kubectl_bin(), admin(), &["create", "-f", "-"], Some(&gadget)));
    let (mine, theirs) = (unique("mine"), unique("theirs"));
    let doohickey = |name: &str| object(&group, "Doohickey", name);
    ok(kubectl_stdin(kubectl_bin(), admin(), &["-n", "globex-main", "create", "-f", "-"], Some(&doohickey(&mine))));
    ok(kubectl_stdin(kubectl_bin(), admin(), &["-n", "acme-web-dev", "create", "-f", "-"], Some(&doohickey(&theirs))));

    // Canopy polls discovery; once it has seen the CRD, a gadget is cluster-scoped: not in the
    // view's allowlist, so not there at all — not a namespaced resource missing its namespace.
    let another = object(&group, "Gadget", &unique("gadget"));
    // Raw, as a client with its own mapping sends it: discovery in the view does not list it.
    let path = format!("/apis/{group}/v1/gadgets");
    let mut refused = String::new();
    eventually(Duration::from_secs(20), "Canopy to learn the gadget's scope", || {
        refused = fails(kubectl_stdin(kubectl_bin(), &dave, &["create", "--raw", &path, "-f", "-"], Some(&another)));
        !refused.contains("name a namespace")
    });
    assert!(refused.contains("NotFound") || refused.contains("could not find"), "{refused}");
    // The same request as admin, straight to the apiserver: the resource is there, cluster-scoped.
    ok(kubectl_stdin(kubectl_bin(), admin(), &["create", "--raw", &path, "-f", "-"], Some(&another)));
    let raw = fails(kubectl(kubectl_bin(), &dave, &["get", "--raw", &path]));
    assert!(raw.contains("NotFound") || raw.contains("could not find"), "a cluster-wide list is no fan-out: {raw}");
    let listed = ok(kubectl(kubectl_bin(), admin(), &["get", &format!("gadgets.{group}"), "-o", "name"]));
    assert!(listed.lines().count() == 2, "{listed}");
    // The platform's who-can decides with the scope discovery gives, as the request path does:
    // Canopy refuses dave the gadgets before upstream RBAC is asked.
    let who = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["who-can", "list", &format!("gadgets.{group}"), "-o", "json", "--config"])
        .arg(&canopy.config)
        .output()
        .unwrap();
    let who: serde_json::Value = serde_json::from_str(&ok(who)).unwrap();
    let row = who["subjects"].as_array().unwrap().iter().find(|row| row["subject"] == "dave").unwrap();
    assert_eq!((row["allowed"].as_bool(), row["by"].as_str()), (Some(false), Some("canopy")), "{row}");

    // A namespaced custom resource across namespaces: the view's namespaces, as the apiserver
    // lists them in globex-main.
    let doohickeys = format!("doohickeys.{group}");
    let mut across = String::new();
    eventually(Duration::from_secs(20), "the admin role to aggregate doohickeys", || {
        let listed = kubectl(kubectl_bin(), &dave, &["get", &doohickeys, "-A", "-o", "name"]);
        across = String::from_utf8_lossy(&listed.stdout).into_owned();
        listed.status.success()
    });
    let direct = ok(kubectl(kubectl_bin(), admin(), &["-n", "globex-main", "get", &doohickeys, "-o", "name"]));
    assert_eq!(lines(&across), lines(&direct));
    assert!(across.contains(&mine) && !across.contains(&theirs), "{across}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_subresource_passes_the_ceiling_but_those_its_verbs_cover() {
    let _tree = tree::reading();
    let canopy = canopy();
    let harness = Harness::shared();
    let name = unique("evictable");
    let pod = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
    );
    ok(kubectl_stdin(kubectl_bin(), admin(), &["-n", "acme-web-dev", "create", "-f", "-"], Some(&pod)));
    let http = canopy.http();
    let bob = harness.token("bob");
    // acme's ceiling grants exec, attach, portforward and log: not evictions, nor tokens.
    let eviction = serde_json::json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}});
    let url = format!("{}/api/v1/namespaces/dev/pods/{name}/eviction", canopy.url);
    let response = http.post(&url).bearer_auth(bob).json(&eviction).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body = response.text().await.unwrap();
    assert!(body.contains(r#"cannot create resource \"pods/eviction\""#) && !body.contains("acme-web"), "{body}");
    let token = fails(kubectl(kubectl_bin(), &as_user(&canopy, "bob"), &["-n", "dev", "create", "token", "default"]));
    assert!(token.contains(r#"cannot create resource "serviceaccounts/token""#), "{token}");
    // Status goes with the verbs on pods: the same object as the apiserver shows the admin.
    let through = ok(kubectl(
        kubectl_bin(),
        &as_user(&canopy, "bob"),
        &["get", "--raw", &format!("/api/v1/namespaces/dev/pods/{name}/status")],
    ));
    let direct = ok(kubectl(
        kubectl_bin(),
        admin(),
        &["get", "--raw", &format!("/api/v1/namespaces/acme-web-dev/pods/{name}/status")],
    ));
    let (through, direct): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&through).unwrap(), serde_json::from_str(&direct).unwrap());
    assert_eq!(through["metadata"]["uid"], direct["metadata"]["uid"]);
    assert_eq!(through["metadata"]["namespace"], "dev");
    // The admin's eviction, straight to the apiserver, is the one that lands.
    let evicted = ok(kubectl_stdin(
        kubectl_bin(),
        admin(),
        &["create", "--raw", &format!("/api/v1/namespaces/acme-web-dev/pods/{name}/eviction"), "-f", "-"],
        Some(&eviction.to_string()),
    ));
    assert!(evicted.contains("Success") || evicted.contains("Eviction"), "{evicted}");
}

/// `GET path` as `token` at `url`, parsed.
async fn list(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn paged_lists_across_namespaces_carry_remaining_item_count() {
    let _tree = tree::reading();
    let canopy = canopy();
    for (physical, count) in [("acme-web-dev", 3), ("acme-web-prod", 2)] {
        for _ in 0..count {
            ok(kubectl(kubectl_bin(), admin(), &["-n", physical, "create", "configmap", &unique("counted")]));
        }
    }
    let http = canopy.http();
    let bob = Harness::shared().token("bob");
    let first = list(&http, &format!("{}/api/v1/configmaps?limit=2", canopy.url), bob).await;
    let rv = first["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    // The physical requests: every namespace of bob's view, read by the admin at the same
    // resourceVersion.
    let namespaces =
        ok(kubectl(kubectl_bin(), admin(), &["get", "ns", "-l", "acme-web.tree.canopy.dev/depth", "-o", "name"]));
    let mut total = 0;
    for namespace in namespaces.lines().filter_map(|l| l.strip_prefix("namespace/")) {
        let path = format!("/api/v1/namespaces/{namespace}/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact");
        let direct: serde_json::Value =
            serde_json::from_str(&ok(kubectl(kubectl_bin(), admin(), &["get", "--raw", &path]))).unwrap();
        total += direct["items"].as_array().unwrap().len() as u64;
    }
    assert!(total >= 5, "{total}");
    // Each page counts what follows it; the last has neither a next page nor a count.
    let (mut page, mut seen) = (first, 0u64);
    loop {
        seen += page["items"].as_array().unwrap().len() as u64;
        let Some(next) = page["metadata"]["continue"].as_str().filter(|c| !c.is_empty()).map(str::to_owned) else {
            assert!(page["metadata"].get("remainingItemCount").is_none(), "{}", page["metadata"]);
            break;
        };
        assert_eq!(
            page["metadata"]["remainingItemCount"],
            total - seen,
            "after {seen} of {total}: {}",
            page["metadata"]
        );
        let url = format!("{}/api/v1/configmaps?limit=2&continue={next}", canopy.url);
        page = list(&http, &url, bob).await;
    }
    assert_eq!(seen, total);
    // A single namespace is the apiserver's own answer, count included.
    let one = list(&http, &format!("{}/api/v1/namespaces/dev/configmaps?limit=1", canopy.url), bob).await;
    let path = "/api/v1/namespaces/acme-web-dev/configmaps?limit=1";
    let direct: serde_json::Value =
        serde_json::from_str(&ok(kubectl(kubectl_bin(), admin(), &["get", "--raw", path]))).unwrap();
    assert!(one["metadata"]["remainingItemCount"].is_u64(), "{}", one["metadata"]);
    assert!(direct["metadata"]["remainingItemCount"].is_u64(), "{}", direct["metadata"]);
}
