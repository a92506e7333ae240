//! The decision every request waits for (`policy::decide`: view confinement, ceiling, deny
//! rules) in the example tree, as it ships and with 1,000 deny rules more at `acme`: 500 about
//! resources the requests do not touch and 500 about Deployments naming objects the requests do
//! not name, which a request for a Deployment meets one by one. The difference, set against the
//! CPU a GET costs through Canopy (bench/RESULTS.md), is what the rules cost a request.
//!
//! `cargo bench --bench decide`; figures are recorded by hand in `bench/RESULTS.md`.

use std::hint::black_box;

use canopy::auth::Identity;
use canopy::config::raw_tree::RawTree;
use canopy::policy::{decide, resolve_view};
use canopy::request::{RequestInfo, ViewPath};
use canopy::tree::Tree;
use criterion::Criterion;
use http::Method;
use serde_json::{Value, json};

/// The example tree with `extra` deny rules added at `acme`.
fn tree(extra: usize) -> Tree {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy-config/example.yaml"))
        .expect("example config");
    let config: Value = serde_saphyr::from_str(&text).expect("example config is YAML");
    let mut raw = config["tree"].clone();
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
    criterion.final_summary();
}
