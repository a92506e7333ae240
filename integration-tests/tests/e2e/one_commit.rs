//! One judge, one commit (design invariant 11), against the real apiserver through the example
//! tree: writes whose result depends on the stored object race writers that flip that object
//! between an allowed and a forbidden state. Canopy must never store a state it refused: the
//! admin watches the object upstream for the whole race, and every answer is an object or a
//! Status. Namespace creations race the view's quota the same way.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::tenants::*;
use crate::common::*;
use serde_json::{Value, json};

/// How long each race runs.
const RACE: Duration = Duration::from_secs(20);

/// A tenant's HTTP client through Canopy.
#[derive(Clone)]
struct Tenant {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Tenant {
    fn new(canopy: &Canopy, user: &str) -> Tenant {
        Tenant { client: canopy.http(), url: canopy.url.clone(), token: Harness::shared().token(user).to_owned() }
    }

    /// Sends `body` with `method` and `content_type` to `path`: the status and the JSON answer
    /// (every answer must be JSON: an object or a Status).
    async fn send(&self, method: reqwest::Method, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        let answer = self
            .client
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("Content-Type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path} answered {code}: {e}: {text}"));
        (code, value)
    }

    async fn patch(&self, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, content_type, body).await
    }

    async fn create(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, "application/json", body).await
    }
}

/// What a race's writers were answered.
#[derive(Default)]
struct Tally {
    committed: AtomicUsize,
    refused: AtomicUsize,
    conflicts: AtomicUsize,
}

impl Tally {
    fn count(&self, code: u16, answer: &Value) {
        match code {
            200..=299 => &self.committed,
            403 => &self.refused,
            409 => &self.conflicts,
            _ => panic!("unexpected answer {code}: {answer}"),
        }
        .fetch_add(1, Ordering::Relaxed);
        if code >= 400 {
            assert_eq!(answer["kind"], "Status", "{answer}");
        }
    }

    fn report(&self, what: &str) -> (usize, usize, usize) {
        let figures = (
            self.committed.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.conflicts.load(Ordering::Relaxed),
        );
        eprintln!("{what}: {} committed, {} refused, {} conflicts", figures.0, figures.1, figures.2);
        figures
    }
}

/// The admin's watch of one object's `jsonpath` upstream, printing each state's value a line.
struct Watch(Child);

impl Watch {
    fn start(physical: &str, kind: &str, name: &str, jsonpath: &str) -> Watch {
        let child = Command::new(kubectl_bin())
            .arg("--kubeconfig")
            .arg(admin_kubeconfig())
            .args(["-n", physical, "get", kind, name, "--watch", "-o", &format!("jsonpath={jsonpath}{{\"\\n\"}}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Watch(child)
    }

    /// Every value the object held while watched.
    fn values(mut self) -> Vec<String> {
        let _ = self.0.kill();
        let output = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
    }
}

/// A copy raced against its source: two tasks flip the object at `path` with the merge patches
/// `flips` (in turn) while two send the base-dependent JSON patch `copy`, until [`RACE`] has
/// passed. Flips are judged writes too: like the apiserver, which retries a patch five times,
/// Canopy may answer one `409` when every try met a concurrent change; a flip refused with `403`
/// means a refused state was stored.
async fn copy_race(tenant: &Tenant, path: &str, flips: [Value; 2], copy: Value, what: &str) {
    let deadline = Instant::now() + RACE;
    let tally = Arc::new(Tally::default());
    let (flips, copy) = (Arc::new(flips), Arc::new(copy));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (flipper, flip_path, flips) = (tenant.clone(), path.to_owned(), Arc::clone(&flips));
        tasks.push(tokio::spawn(async move {
            for round in 0.. {
                if Instant::now() >= deadline {
                    break;
                }
                let (code, answer) = flipper.patch(&flip_path, "application/merge-patch+json", &flips[round % 2]).await;
                assert!(code == 200 || code == 409, "a flip was refused, so a refused state is stored: {answer}");
            }
        }));
        let (tenant, path, copy, tally) = (tenant.clone(), path.to_owned(), Arc::clone(&copy), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (code, answer) = tenant.patch(&path, "application/json-patch+json", &copy).await;
                tally.count(code, &answer);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (committed, refused, _) = tally.report(what);
    assert!(committed > 0 && refused > 0, "the race never exercised both outcomes");
}

fn admin_delete(physical: &str, kind: &str, name: &str) {
    let _ = kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", physical, "delete", kind, name, "--ignore-not-found"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_raced_against_its_source_never_mounts_a_hidden_secret() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = Tenant::new(&canopy, "bob");
    let (hidden, allowed, name) = (unique("hidden"), unique("allowed"), unique("flip"));
    admin_secret("acme-web-dev", &hidden, SSH_AUTH);
    admin_secret("acme-web-dev", &allowed, "Opaque");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"src": allowed}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": "v", "secret": {"secretName": allowed}}]}}}
    });
    let (code, answer) = bob.create("/apis/apps/v1/namespaces/dev/deployments", &deployment).await;
    assert_eq!(code, 201, "{answer}");
    let watch = Watch::start("acme-web-dev", "deployment", &name, "{.spec.template.spec.volumes[0].secret.secretName}");
    let path = format!("/apis/apps/v1/namespaces/dev/deployments/{name}");
    let flip = |source: &str| json!({"metadata": {"annotations": {"src": source}}});
    let copy = json!([{"op": "copy", "from": "/metadata/annotations/src",
                       "path": "/spec/template/spec/volumes/0/secret/secretName"}]);
    copy_race(&bob, &path, [flip(&allowed), flip(&hidden)], copy, "secret copies").await;
    let values = watch.values();
    assert!(!values.is_empty(), "the admin's watch saw nothing");
    assert!(!values.contains(&hidden), "a refused state was stored: {values:?}");
    admin_delete("acme-web-dev", "deployment", &name);
    admin_delete("acme-web-dev", "secret", &hidden);
    admin_delete("acme-web-dev", "secret", &allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_raced_against_its_source_never_sets_a_write_masked_field() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = Tenant::new(&canopy, "bob");
    let name = unique("masked");
    // The platform pinned the template; tenants may keep the pin but never change it.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "acme-web-dev", "labels": {"app": name}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"nodeSelector": {"app": name}, "containers": [{"name": "c", "image": "busybox"}]}}}
    });
    ok(kubectl_stdin(kubectl_bin(), admin_kubeconfig(), &["create", "-f", "-"], Some(&deployment.to_string())));
    let watch = Watch::start("acme-web-dev", "deployment", &name, "{.spec.template.spec.nodeSelector.zone}");
    let path = format!("/apis/apps/v1/namespaces/dev/deployments/{name}");
    let flips = [json!({"metadata": {"labels": {"zone": "x"}}}), json!({"metadata": {"labels": {"zone": null}}})];
    // Allowed while the labels equal the pin (nothing changes), refused otherwise.
    let copy = json!([{"op": "copy", "from": "/metadata/labels", "path": "/spec/template/spec/nodeSelector"}]);
    copy_race(&bob, &path, flips, copy, "nodeSelector copies").await;
    let values = watch.values();
    assert!(values.iter().all(|v| v.is_empty()), "a refused nodeSelector was stored: {values:?}");
    admin_delete("acme-web-dev", "deployment", &name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_raced_against_its_source_never_binds_an_outsider() {
    let _tree = tree::reading();
    let canopy = canopy();
    let alice = Tenant::new(&canopy, "alice");
    let alice = Tenant { url: format!("{}/v/acme/web", alice.url), ..alice };
    let name = unique("bind");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "annotations": {"who": "bob"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]
    });
    let (code, answer) = alice.create("/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings", &binding).await;
    assert_eq!(code, 201, "{answer}");
    let watch = Watch::start("acme-web-dev", "rolebinding", &name, "{.subjects[0].name}");
    let path = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings/{name}");
    let flip = |who: &str| json!({"metadata": {"annotations": {"who": who}}});
    let copy = json!([{"op": "copy", "from": "/metadata/annotations/who", "path": "/subjects/0/name"}]);
    copy_race(&alice, &path, [flip("mallory"), flip("bob")], copy, "subject copies").await;
    let values = watch.values();
    assert!(!values.iter().any(|v| v == "mallory"), "an outsider was bound: {values:?}");
    admin_delete("acme-web-dev", "rolebinding", &name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_namespace_creations_stay_within_the_quota() {
    let _tree = tree::changing();
    let canopy = canopy();
    let bob = Tenant::new(&canopy, "bob");
    let selector = "acme-web.tree.canopy.dev/depth";
    let held = || {
        let names =
            ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["get", "namespaces", "-l", selector, "-o", "name"]));
        names.lines().count()
    };
    let before = held();
    // acme/web inherits acme's quota of ten.
    let free = 10usize.saturating_sub(before);
    let names: Vec<String> = (0..free + 4).map(|i| unique(&format!("rush{i}"))).collect();
    let _cleanup = NamespaceCleanup(names.iter().map(|n| format!("acme-web-{n}")).collect());
    let creations = names.iter().map(|name| {
        let bob = bob.clone();
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        tokio::spawn(async move { bob.create("/api/v1/namespaces", &namespace).await })
    });
    let mut created = 0;
    for creation in creations.collect::<Vec<_>>() {
        let (code, answer) = creation.await.unwrap();
        match code {
            201 => created += 1,
            403 => assert!(answer["message"].as_str().unwrap().contains("quota is 10"), "{answer}"),
            _ => panic!("unexpected answer {code}: {answer}"),
        }
    }
    assert_eq!(created, free, "{before} namespaces held before");
    assert_eq!(held(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judged_write_keeps_the_callers_field_ownership() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = Tenant::new(&canopy, "bob");
    let name = unique("owned");
    let path = format!("/apis/apps/v1/namespaces/dev/deployments/{name}?fieldManager=tenant-tool");
    let apply = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    });
    let (code, answer) = bob.patch(&path, "application/apply-patch+yaml", &apply).await;
    assert_eq!(code, 201, "{answer}");
    let scale = json!({"spec": {"replicas": 0, "minReadySeconds": 5}});
    let path = format!("/apis/apps/v1/namespaces/dev/deployments/{name}?fieldManager=tenant-patch");
    let (code, answer) = bob.patch(&path, "application/merge-patch+json", &scale).await;
    assert_eq!(code, 200, "{answer}");
    let stored = ok(kubectl(
        kubectl_bin(),
        admin_kubeconfig(),
        &["-n", "acme-web-dev", "get", "deployment", &name, "--show-managed-fields", "-o", "json"],
    ));
    let stored: Value = serde_json::from_str(&stored).unwrap();
    let managers: Vec<(String, String)> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["manager"].as_str().unwrap().to_owned(), m["operation"].as_str().unwrap().to_owned()))
        .collect();
    assert!(managers.contains(&("tenant-tool".into(), "Apply".into())), "{managers:?}");
    assert!(managers.contains(&("tenant-patch".into(), "Update".into())), "{managers:?}");
    let fields = stored["metadata"]["managedFields"].to_string();
    assert!(!fields.contains("f:resourceVersion"), "the precondition became a managed field: {fields}");
    admin_delete("acme-web-dev", "deployment", &name);
}
