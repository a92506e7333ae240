//! The decision every request waits for (`policy::decide`: view confinement, ceiling, deny
//! rules) in the example tree, as it ships and with 1,000 deny rules more at `acme`: 500 about
//! resources the requests do not touch and 500 about Deployments naming objects the requests do
//! not name, which a request for a Deployment meets one by one. The difference, set against the
//! CPU a GET costs through Canopy (bench/RESULTS.md), is what the rules cost a request.
//!
//! Then the value bounds a write meets (`policy::bound_gate`: the gate made for the request, then
//! its judgement of the object the dry run would store, a typical Deployment) with 1,000 bounds
//! more at `acme`: 500 on a resource the write does not touch and 500 on Deployments (object
//! names and prefixes the write does not name, patterns, enums, ranges, absences and immutable
//! fields it meets), against none.
//!
//! `cargo bench --bench decide`; figures are recorded by hand in `bench/RESULTS.md`.

use std::hint::black_box;
use std::sync::Arc;

use canopy::auth::Identity;
use canopy::config::raw_tree::RawTree;
use canopy::policy::bound_gate::BoundGate;
use canopy::policy::{decide, resolve_view};
use canopy::request::{RequestInfo, ViewPath};
use canopy::transform::Translation;
use canopy::tree::Tree;
use criterion::Criterion;
use http::Method;
use serde_json::{Value, json};

/// The example tree's raw `tree:` section.
fn example() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy-config/example.yaml"))
        .expect("example config");
    let config: Value = serde_saphyr::from_str(&text).expect("example config is YAML");
    config["tree"].clone()
}

/// The example tree with `extra` deny rules added at `acme`.
fn tree(extra: usize) -> Tree {
    let mut raw = example();
    let denies = raw["nodes"][0]["deny"].as_array_mut().expect("acme has deny rules");
    for i in 0..extra {
        denies.push(match i % 2 {
            0 => json!({"apiGroups": ["example.com"], "resources": [format!("widgets{i}")], "verbs": ["*"]}),
            _ => json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["update", "patch"],
                        "resourceNames": [format!("kept{i}-*")], "reason": "kept"}),
        });
    }
    let raw: RawTree = serde_json::from_value(raw).expect("example tree");
    Tree::compile(&raw, "tree").expect("the tree compiles")
}

/// The example tree with `extra` value bounds at `acme`, which holds none of its own.
fn bounded_tree(extra: usize) -> Tree {
    let mut raw = example();
    let bounds: Vec<Value> = (0..extra)
        .map(|i| match (i % 2, i / 2 % 7) {
            (0, _) => json!({"resource": format!("widgets{i}.example.com"), "path": "$.spec.size", "max": 10}),
            (_, 0) => json!({"resource": "deployments.apps", "names": [format!("kept{i}")], "path": "$.spec.replicas", "max": 1}),
            (_, 1) => json!({"resource": "deployments.apps", "names": [format!("kept{i}-*")], "path": "$.spec.paused", "absent": true}),
            (_, 2) => json!({"resource": "deployments.apps", "path": "$.spec.template.spec.containers[*].image",
                             "regex": format!("images\\.acme\\.internal/.+|registry{i}/.+")}),
            (_, 3) => json!({"resource": "deployments.apps", "path": "$.spec.strategy.type",
                             "enum": ["RollingUpdate", "Recreate", format!("other{i}")]}),
            (_, 4) => json!({"resource": "deployments.apps", "path": "$.spec.replicas", "min": 1, "max": 100 + i}),
            (_, 5) => json!({"resource": "deployments.apps", "path": "$.spec.template.spec.hostNetwork", "absent": true}),
            _ => json!({"resource": "deployments.apps", "path": format!("$.metadata.labels['team{i}']"), "immutable": true}),
        })
        .collect();
    raw["nodes"][0]["bounds"] = Value::Array(bounds);
    let raw: RawTree = serde_json::from_value(raw).expect("example tree");
    Tree::compile(&raw, "tree").expect("the tree compiles")
}

/// A Deployment as the apiserver would store it after a write (its defaults filled in).
fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "acme-web-dev", "resourceVersion": "4711", "generation": 3,
            "uid": "9d6d2c1c-6b8a-4c1e-9c1e-1f0a4d7b2e11", "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {"replicas": 3, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler", "securityContext": {},
                    "containers": [
                        {"name": "web", "image": "images.acme.internal/web:1.4.2", "imagePullPolicy": "IfNotPresent",
                         "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                         "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"},
                        {"name": "proxy", "image": "images.acme.internal/envoy:1.30", "imagePullPolicy": "IfNotPresent",
                         "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}]}}},
        "status": {"observedGeneration": 3, "replicas": 3, "readyReplicas": 3}})
}

/// The gate bob's PATCH of `web` meets, made as for a request, and its judgement of `result`.
fn judge(tree: &Arc<Tree>, view: usize, info: &RequestInfo, result: &Value) -> bool {
    let governing = tree.answering(view, Some("acme-web-dev"));
    let translation = Translation {
        tree: Arc::clone(tree),
        view,
        namespace: Some(("acme-web-dev".into(), "dev".into())),
        watch: false,
        namespaces: false,
        secrets: None,
        mask: None,
    };
    match BoundGate::of(tree, governing, info, &translation) {
        Some(gate) => gate.check(result, Some(result)).is_ok(),
        None => true,
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let bob = Identity::new("bob", ["system:authenticated"]);
    let requests = [
        ("GET configmap", Method::GET, "/api/v1/namespaces/dev/configmaps/settings"),
        ("PATCH deployment", Method::PATCH, "/apis/apps/v1/namespaces/dev/deployments/web"),
    ];
    for rules in [0, 1000] {
        let tree = tree(rules);
        let view = resolve_view(&tree, &bob, &ViewPath(None)).expect("bob has a view");
        for (name, method, path) in &requests {
            let info = RequestInfo::parse(method, path, None).expect("a request");
            criterion.bench_function(&format!("decide {name}, {rules} extra deny rules"), |b| {
                b.iter(|| decide(black_box(&tree), view, &bob, black_box(&info)).is_ok())
            });
        }
    }
    let info =
        RequestInfo::parse(&Method::PATCH, "/apis/apps/v1/namespaces/dev/deployments/web", None).expect("a request");
    let result = deployment();
    for bounds in [0, 1000] {
        let tree = Arc::new(bounded_tree(bounds));
        let view = resolve_view(&tree, &bob, &ViewPath(None)).expect("bob has a view");
        assert!(judge(&tree, view, &info, &result), "the Deployment meets every bound");
        criterion.bench_function(&format!("judge PATCH deployment, {bounds} bounds"), |b| {
            b.iter(|| judge(black_box(&tree), view, black_box(&info), black_box(&result)))
        });
    }
    criterion.final_summary();
}
