use http::Method;

use super::*;
use crate::config::raw_tree::RawTree;

/// The tree of `proxy-config/example.yaml`.
pub fn example() -> Tree {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy-config/example.yaml")).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let raw: RawTree = serde_json::from_value(doc["tree"].clone()).unwrap();
    Tree::compile(&raw, "tree").unwrap()
}

fn user(name: &str) -> Identity {
    Identity::new(name, ["system:authenticated"])
}

fn request(method: Method, uri: &str) -> RequestInfo {
    let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
    RequestInfo::parse(&method, path, query).unwrap()
}

fn attempt(tree: &Tree, who: &str, view: Option<&str>, method: Method, uri: &str) -> Result<Plan, Status> {
    let identity = user(who);
    let node = resolve_view(tree, &identity, &ViewPath(view.map(str::to_owned)))?;
    decide(tree, node, &identity, &request(method, uri))
}

#[test]
fn members_reach_their_subtree_under_virtual_names() {
    let tree = example();
    let plan = attempt(&tree, "bob", None, Method::GET, "/api/v1/namespaces/dev/configmaps").unwrap();
    assert_eq!(plan.namespace, Some(("acme-web-dev".into(), "dev".into())));
    let plan = attempt(&tree, "alice", Some("acme"), Method::GET, "/api/v1/namespaces/web-dev/pods/p/log").unwrap();
    assert_eq!(plan.namespace, Some(("acme-web-dev".into(), "web-dev".into())));
    let plan = attempt(&tree, "alice", Some("acme/web"), Method::GET, "/api/v1/namespaces/prod/pods").unwrap();
    assert_eq!(plan.namespace.unwrap().0, "acme-web-prod");
    let plan = attempt(&tree, "bob", None, Method::GET, "/api/v1/namespaces?watch=true").unwrap();
    assert_eq!(plan.selector.as_deref(), Some("acme-web.tree.canopy.dev/depth"));
}

#[test]
fn cross_tenant_attempts_are_refused() {
    let tree = example();
    // (who, view, method, uri, code)
    let cases: [(&str, Option<&str>, Method, &str, u16); 14] = [
        ("bob", None, Method::GET, "/api/v1/namespaces/main/configmaps", 404),
        ("bob", None, Method::GET, "/api/v1/namespaces/globex-main/configmaps", 404),
        ("bob", None, Method::GET, "/api/v1/namespaces/acme-web-dev/configmaps", 404),
        ("bob", None, Method::GET, "/api/v1/namespaces/kube-system/secrets", 404),
        ("bob", Some("acme"), Method::GET, "/api/v1/namespaces", 404),
        ("bob", Some("globex"), Method::GET, "/api/v1/namespaces", 404),
        ("bob", Some("acme/data"), Method::GET, "/api/v1/namespaces/warehouse/pods", 404),
        ("carol", None, Method::POST, "/api/v1/namespaces/warehouse/pods/p/exec", 403),
        ("carol", None, Method::DELETE, "/api/v1/namespaces/warehouse/configmaps/c", 403),
        ("erin", None, Method::GET, "/api/v1/namespaces", 403),
        ("alice", None, Method::GET, "/api/v1/namespaces/dev/pods", 404),
        ("bob", None, Method::GET, "/api/v1/nodes", 404),
        ("bob", None, Method::DELETE, "/api/v1/pods", 403),
        ("carol", None, Method::GET, "/apis/rbac.authorization.k8s.io/v1/clusterroles", 404),
    ];
    for (who, view, method, uri, code) in cases {
        let err = attempt(&tree, who, view, method.clone(), uri).unwrap_err();
        assert_eq!(err.code.as_u16(), code, "{who} {view:?} {method} {uri}: {err}");
        // Only names the caller sent may be echoed back.
        for leak in ["globex-main", "acme-web-dev", "acme-data-warehouse"].into_iter().filter(|n| !uri.contains(n)) {
            assert!(!err.message.contains(leak), "{uri} leaks {leak}: {err}");
        }
    }
}

#[test]
fn lists_across_namespaces_fan_out() {
    let tree = example();
    let plan = attempt(&tree, "bob", None, Method::GET, "/api/v1/pods").unwrap();
    assert!(plan.across && plan.namespace.is_none() && !plan.as_canopy, "{plan:?}");
    let plan = attempt(&tree, "bob", None, Method::GET, "/api/v1/configmaps?watch=1").unwrap();
    assert!(plan.across, "{plan:?}");
}

#[test]
fn allowlisted_cluster_reads_and_self_reviews_pass() {
    let tree = example();
    assert!(attempt(&tree, "bob", None, Method::GET, "/apis/storage.k8s.io/v1/storageclasses").is_ok());
    assert!(attempt(&tree, "bob", None, Method::DELETE, "/apis/storage.k8s.io/v1/storageclasses/x").is_err());
    assert!(attempt(&tree, "dave", None, Method::GET, "/apis/storage.k8s.io/v1/storageclasses").is_err());
    assert!(attempt(&tree, "erin", None, Method::GET, "/version").is_err(), "non-members have no view at all");
    assert!(
        attempt(&tree, "dave", None, Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").is_ok()
    );
}

#[test]
fn a_namespace_answers_to_its_owners_ceiling_from_any_view_above() {
    let tree = example();
    // acme/data is read-only with logs only; a view of acme reaches it no further.
    let write = attempt(&tree, "alice", Some("acme"), Method::DELETE, "/api/v1/namespaces/data-warehouse/configmaps/c");
    assert_eq!(write.unwrap_err().code, http::StatusCode::FORBIDDEN);
    let exec = attempt(&tree, "alice", Some("acme"), Method::POST, "/api/v1/namespaces/data-warehouse/pods/p/exec");
    assert_eq!(exec.unwrap_err().code, http::StatusCode::FORBIDDEN);
    assert!(attempt(&tree, "alice", Some("acme"), Method::GET, "/api/v1/namespaces/data-warehouse/configmaps").is_ok());
    assert!(attempt(&tree, "alice", Some("acme"), Method::DELETE, "/api/v1/namespaces/web-dev/configmaps/c").is_ok());
}

/// A tree whose only node reads every cluster-scoped resource and uses no subresource.
fn wide_cluster_reader() -> Tree {
    let raw: RawTree = serde_saphyr::from_str(
        "domain: canopy.dev\nnodes:\n  - name: wide\n    namespaces: [main]\n    members: [{kind: User, name: wendy, role: admin}]\n    allow:\n      resources: [{apiGroups: [\"*\"], resources: [\"*\"], verbs: [\"*\"]}]\n      clusterResources: [{apiGroups: [\"*\"], resources: [\"*\"]}]\n",
    )
    .unwrap();
    Tree::compile(&raw, "tree").unwrap()
}

#[test]
fn a_wildcard_cluster_read_never_reads_namespaced_resources_cluster_wide() {
    let tree = wide_cluster_reader();
    for uri in ["/api/v1/configmaps", "/api/v1/secrets?watch=1", "/apis/apps/v1/deployments"] {
        let plan = attempt(&tree, "wendy", None, Method::GET, uri).unwrap();
        assert!(plan.across, "{uri} must be answered across the view's namespaces: {}", plan.rule);
    }
    let nodes = attempt(&tree, "wendy", None, Method::GET, "/api/v1/nodes").unwrap();
    assert!(!nodes.across && nodes.namespace.is_none());
}

#[test]
fn subresources_of_cluster_scoped_resources_pass_the_ceiling() {
    let tree = wide_cluster_reader();
    let proxy = attempt(&tree, "wendy", None, Method::GET, "/api/v1/nodes/n/proxy/stats").unwrap_err();
    assert_eq!(proxy.code, 403, "{}", proxy.message);
    assert!(attempt(&tree, "wendy", None, Method::GET, "/api/v1/nodes/n/status").is_ok());
    let example = example();
    assert!(attempt(&example, "dave", None, Method::GET, "/api/v1/nodes/n/proxy/stats").is_ok(), "globex allows proxy");
}

/// `tree` with discovery as a fixed table: a cluster-scoped `gadgets`, a namespaced `doohickeys`.
fn with_discovery(mut tree: Tree) -> Tree {
    let mut table = crate::request::scope::ScopeTable::default();
    table.insert("example.com", "gadgets", true);
    table.insert("example.com", "doohickeys", false);
    tree.scopes = Some(std::sync::Arc::new(crate::tree::ScopesReadOnce(std::sync::Arc::new(table))));
    tree
}

#[test]
fn custom_resources_are_scoped_as_discovery_says() {
    let tree = with_discovery(example());
    let created = attempt(&tree, "dave", None, Method::POST, "/apis/example.com/v1/gadgets").unwrap_err();
    assert_eq!(created.code, 404, "{}", created.message);
    assert!(!created.message.contains("name a namespace"), "{}", created.message);
    assert_eq!(attempt(&tree, "dave", None, Method::GET, "/apis/example.com/v1/gadgets").unwrap_err().code, 404);
    assert!(attempt(&tree, "dave", None, Method::GET, "/apis/example.com/v1/doohickeys").unwrap().across);
    // Without discovery, an unknown resource is taken to be namespaced.
    assert!(attempt(&example(), "dave", None, Method::GET, "/apis/example.com/v1/gadgets").unwrap().across);
    // Built-in resources discovery has not listed keep the built-in scope.
    for uri in
        ["/apis/resource.k8s.io/v1/deviceclasses", "/apis/storagemigration.k8s.io/v1beta1/storageversionmigrations"]
    {
        let refused = attempt(&tree, "dave", None, Method::POST, uri).unwrap_err();
        assert!(refused.code == 404 && !refused.message.contains("name a namespace"), "{uri}: {}", refused.message);
    }
}

#[test]
fn subresources_other_than_status_and_scale_need_the_ceilings_grant() {
    let tree = example();
    for (uri, method) in [
        ("/api/v1/namespaces/dev/pods/p/eviction", Method::POST),
        ("/api/v1/namespaces/dev/serviceaccounts/default/token", Method::POST),
        ("/api/v1/namespaces/dev/pods/p/ephemeralcontainers", Method::PATCH),
        ("/apis/example.com/v1/namespaces/dev/widgets/w/console", Method::GET),
    ] {
        let refused = attempt(&tree, "bob", None, method, uri).unwrap_err();
        assert_eq!(refused.code, 403, "{uri}");
        let sub = uri.rsplit('/').next().unwrap();
        assert!(refused.message.contains(&format!("/{sub}\" in API group")), "{uri}: {}", refused.message);
    }
    for (uri, method) in [
        ("/api/v1/namespaces/dev/pods/p/status", Method::GET),
        ("/apis/apps/v1/namespaces/dev/deployments/d/scale", Method::PATCH),
        ("/api/v1/namespaces/dev/pods/p/log", Method::GET),
    ] {
        assert!(attempt(&tree, "bob", None, method, uri).is_ok(), "{uri}");
    }
}

#[test]
fn deny_rules_beat_every_allow_and_name_their_config_path() {
    let tree = example();
    let worker = "/apis/apps/v1/namespaces/dev/deployments/queueworker";
    for (method, uri) in [
        (Method::PATCH, worker.to_owned()),
        (Method::PUT, format!("{worker}/scale")),
        (Method::DELETE, worker.to_owned()),
    ] {
        let refused = attempt(&tree, "bob", None, method, &uri).unwrap_err();
        assert_eq!(refused.code, http::StatusCode::FORBIDDEN);
        assert!(
            refused.message.contains("denied by tree.nodes[0].deny[0]: the platform team runs"),
            "{}",
            refused.message
        );
    }
    // An admin above is refused too: the rule holds at and below acme.
    assert!(
        attempt(
            &tree,
            "alice",
            Some("acme"),
            Method::PATCH,
            "/apis/apps/v1/namespaces/web-dev/deployments/queueworker"
        )
        .is_err()
    );
    attempt(&tree, "bob", None, Method::GET, worker).unwrap();
    attempt(&tree, "bob", None, Method::PATCH, "/apis/apps/v1/namespaces/dev/deployments/web").unwrap();
    // globex has no such rule.
    attempt(&tree, "dave", None, Method::PATCH, "/apis/apps/v1/namespaces/main/deployments/queueworker").unwrap();
}

const INGRESS: &str = "system:serviceaccount:ingress-nginx:ingress-nginx";
const BACKUP: &str = "system:serviceaccount:backup:velero";

#[test]
fn a_controller_reaching_all_namespaces_names_them_physically_and_lists_cluster_wide_at_once() {
    let tree = example();
    let plan = attempt(&tree, INGRESS, None, Method::GET, "/api/v1/namespaces/acme-web-dev/secrets/tls").unwrap();
    assert_eq!(plan.namespace, Some(("acme-web-dev".into(), "acme-web-dev".into())));
    let plan = attempt(&tree, INGRESS, None, Method::GET, "/api/v1/namespaces/kube-system/secrets").unwrap();
    assert_eq!(plan.namespace.unwrap().0, "kube-system");
    // `-A`: one request upstream, not a fan-out; namespaces as the controller itself.
    let plan = attempt(&tree, INGRESS, None, Method::GET, "/api/v1/secrets?watch=1").unwrap();
    assert!(!plan.across && plan.namespace.is_none() && !plan.as_canopy, "{plan:?}");
    let plan = attempt(&tree, INGRESS, None, Method::GET, "/api/v1/namespaces").unwrap();
    assert!(plan.selector.is_none() && !plan.as_canopy, "{plan:?}");
    // Its ceiling alone: acme's deny rule is about acme's tenants, and acme's pods are not its.
    assert!(attempt(&tree, INGRESS, None, Method::GET, "/apis/apps/v1/namespaces/acme-web-dev/deployments").is_err());
    let refused = attempt(&tree, INGRESS, None, Method::POST, "/api/v1/namespaces/acme-web-dev/secrets").unwrap_err();
    assert_eq!(refused.code, 403);
    assert!(attempt(&tree, INGRESS, None, Method::GET, "/apis/networking.k8s.io/v1/ingressclasses").is_ok());
    // Its subjects call plain URLs: a view's URL does not exist for them.
    assert_eq!(attempt(&tree, INGRESS, Some("acme"), Method::GET, "/api/v1/secrets").unwrap_err().code, 404);
}

#[test]
fn a_controller_reaching_a_subtree_fans_out_over_its_namespaces_only() {
    let tree = example();
    let plan = attempt(&tree, BACKUP, None, Method::GET, "/api/v1/configmaps").unwrap();
    assert!(plan.across, "{plan:?}");
    let view = resolve_view(&tree, &user(BACKUP), &ViewPath(None)).unwrap();
    let info = request(Method::GET, "/api/v1/configmaps");
    assert_eq!(
        across_namespaces(&tree, view, &user(BACKUP), &info),
        ["acme-data-warehouse", "acme-web-dev", "acme-web-prod"]
    );
    let plan = attempt(&tree, BACKUP, None, Method::GET, "/api/v1/namespaces/acme-web-dev/secrets").unwrap();
    assert_eq!(plan.namespace, Some(("acme-web-dev".into(), "acme-web-dev".into())));
    for outside in ["globex-main", "kube-system", "dev", "web-dev"] {
        let uri = format!("/api/v1/namespaces/{outside}/secrets");
        assert_eq!(attempt(&tree, BACKUP, None, Method::GET, &uri).unwrap_err().code, 404, "{outside}");
    }
    let plan = attempt(&tree, BACKUP, None, Method::GET, "/api/v1/namespaces?watch=1").unwrap();
    assert_eq!(plan.selector.as_deref(), Some("acme.tree.canopy.dev/depth"));
    assert_eq!(attempt(&tree, BACKUP, None, Method::DELETE, "/api/v1/namespaces/acme-web-dev").unwrap_err().code, 403);
}
