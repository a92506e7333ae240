//! Filters over documents recorded from the real apiserver (Kubernetes 1.37).

use serde_json::Value;

use super::*;
use crate::policy::tests::example as tree;
use crate::tree::Tree;

fn ceiling(tree: &Tree, path: &str) -> Ceiling {
    tree.nodes[tree.node(path).unwrap()].ceiling.clone()
}

fn recorded(name: &str) -> Value {
    let path = format!("{}/src/discovery/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn names(doc: &Value) -> Vec<String> {
    doc["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
}

fn verbs_of(doc: &Value, name: &str) -> Vec<String> {
    let resource = doc["resources"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap();
    resource["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[test]
fn core_resources_follow_the_ceiling() {
    let tree = tree();
    let doc = Document::Resources { group: String::new() };
    let mut web = recorded("api-v1.json");
    doc.filter(&ceiling(&tree, "acme/web"), &mut web);
    let listed = names(&web);
    for shown in ["pods", "pods/exec", "pods/log", "configmaps", "secrets", "namespaces"] {
        assert!(listed.iter().any(|n| n == shown), "{shown} missing from {listed:?}");
    }
    for hidden in ["nodes", "persistentvolumes", "componentstatuses", "pods/proxy", "nodes/proxy"] {
        assert!(!listed.iter().any(|n| n == hidden), "{hidden} shown in {listed:?}");
    }
    assert_eq!(verbs_of(&web, "namespaces"), ["create", "delete", "get", "list", "patch", "update", "watch"]);

    let mut data = recorded("api-v1.json");
    doc.filter(&ceiling(&tree, "acme/data"), &mut data);
    let listed = names(&data);
    assert!(listed.iter().any(|n| n == "pods/log") && !listed.iter().any(|n| n == "pods/exec"), "{listed:?}");
    assert_eq!(verbs_of(&data, "configmaps"), ["get", "list", "watch"]);
}

#[test]
fn aggregated_discovery_drops_invisible_groups_and_resources() {
    let tree = tree();
    let mut apis = recorded("apis-aggregated.json");
    Document::Groups.filter(&ceiling(&tree, "acme/data"), &mut apis);
    let groups: Vec<&str> =
        apis["items"].as_array().unwrap().iter().map(|g| g["metadata"]["name"].as_str().unwrap()).collect();
    assert!(groups.contains(&"apps") && groups.contains(&"batch") && groups.contains(&"authorization.k8s.io"));
    for hidden in ["rbac.authorization.k8s.io", "certificates.k8s.io", "storage.k8s.io", "apiextensions.k8s.io"] {
        assert!(!groups.contains(&hidden), "{hidden} in {groups:?}");
    }
    let deployments = apis["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .and_then(|g| g["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "deployments"))
        .unwrap();
    assert_eq!(deployments["verbs"], serde_json::json!(["get", "list", "watch"]));

    let mut web = recorded("apis-aggregated.json");
    Document::Groups.filter(&ceiling(&tree, "acme/web"), &mut web);
    let text = web.to_string();
    assert!(text.contains("\"storageclasses\"") && !text.contains("\"csidrivers\""));
    assert!(!text.contains("\"clusterroles\"") && text.contains("\"rolebindings\""), "namespaced RBAC only");

    let mut core = recorded("api-aggregated.json");
    Document::Groups.filter(&ceiling(&tree, "globex"), &mut core);
    let text = core.to_string();
    assert!(text.contains("\"pods\"") && text.contains("\"nodes\""), "globex reads nodes");
    assert!(!text.contains("\"persistentvolumes\""), "no other cluster-scoped resource");
}

#[test]
fn the_openapi_index_lists_visible_groups_only() {
    let tree = tree();
    let mut index = recorded("openapi-v3-index.json");
    Document::OpenApiIndex.filter(&ceiling(&tree, "acme/data"), &mut index);
    let paths = index["paths"].as_object().unwrap();
    assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
    assert!(!paths.contains_key("apis/rbac.authorization.k8s.io/v1") && !paths.contains_key("apis/storage.k8s.io/v1"));
    assert!(!Document::OpenApi { group: Some("storage.k8s.io".into()) }.visible(&ceiling(&tree, "acme/data")));
}

#[test]
fn openapi_paths_follow_the_ceiling() {
    let tree = tree();
    let mut doc = serde_json::json!({"paths": {
        "/api/v1/namespaces/{namespace}/pods": {},
        "/api/v1/namespaces/{namespace}/pods/{name}/exec": {},
        "/api/v1/nodes": {},
        "/api/v1/watch/namespaces/{namespace}/configmaps": {},
        "/api/v1/": {},
    }});
    Document::OpenApi { group: Some(String::new()) }.filter(&ceiling(&tree, "acme/data"), &mut doc);
    let kept: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        kept,
        ["/api/v1/", "/api/v1/namespaces/{namespace}/pods", "/api/v1/watch/namespaces/{namespace}/configmaps"]
    );
}

#[test]
fn openapi_schemas_are_those_visible_paths_reach() {
    let tree = tree();
    let get = |kind: &str| serde_json::json!({"get": {"responses": {"200": {"schema": {"$ref": format!("#/definitions/{kind}")}}}}});
    let mut v2 = serde_json::json!({
    "paths": {"/api/v1/namespaces/{namespace}/pods": get("Pod"), "/api/v1/nodes": get("Node")},
    "definitions": {
        "Pod": {"properties": {"spec": {"$ref": "#/definitions/PodSpec"}}},
        "PodSpec": {"properties": {"x": {"items": {"$ref": "#/definitions/Container"}}}},
        "Container": {"type": "object"},
        "Node": {"properties": {"status": {"$ref": "#/definitions/NodeStatus"}}},
        "NodeStatus": {"type": "object"},
    }});
    Document::OpenApi { group: None }.filter(&ceiling(&tree, "acme/data"), &mut v2);
    let kept: Vec<&String> = v2["definitions"].as_object().unwrap().keys().collect();
    assert_eq!(kept, ["Container", "Pod", "PodSpec"]);
    let mut v3 = serde_json::json!({
        "paths": {"/api/v1/nodes": {"get": {"$ref": "#/components/schemas/Node"}}},
        "components": {"schemas": {"Node": {}, "Pod": {}}}});
    Document::OpenApi { group: Some(String::new()) }.filter(&ceiling(&tree, "globex"), &mut v3);
    let kept: Vec<&String> = v3["components"]["schemas"].as_object().unwrap().keys().collect();
    assert_eq!(kept, ["Node"]);
}

#[test]
fn openapi_reads_each_resource_s_scope_from_the_document_custom_resources_included() {
    let raw = serde_json::json!({"nodes": [{"name": "t", "namespaces": ["a"], "allow": {
        "resources": [{"apiGroups": ["example.com"], "resources": ["*"], "verbs": ["*"]}]}}]});
    let tree = Tree::compile(&serde_json::from_value(raw).unwrap(), "tree").unwrap();
    // `gadgets` is cluster-scoped (no path under a namespace): a namespaced rule does not show it.
    let mut doc = serde_json::json!({"paths": {
        "/apis/example.com/v1/namespaces/{namespace}/doohickeys": {},
        "/apis/example.com/v1/doohickeys": {},
        "/apis/example.com/v1/gadgets": {},
        "/apis/example.com/v1/gadgets/{name}": {},
    }});
    Document::OpenApi { group: Some("example.com".into()) }.filter(&ceiling(&tree, "t"), &mut doc);
    let kept: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(kept, ["/apis/example.com/v1/doohickeys", "/apis/example.com/v1/namespaces/{namespace}/doohickeys"]);
}
