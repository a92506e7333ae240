//! Issue 20: another tenant's namespace named in a field of an object the view reads. The admin
//! points a RoleBinding of acme-web-dev at globex's ServiceAccounts and a Deployment's pod
//! affinity at globex's namespace. Through Canopy they read `<another namespace>` there (objects,
//! lists, Tables, watch events, refusals), never `globex-main`; an update sent back as read keeps
//! the stored name; a write that aims the placeholder elsewhere, or sends it in a JSON patch or a
//! create, is refused with 422 and changes nothing.

use crate::common::tenants::*;
use crate::common::*;

const HIDDEN: &str = "<another namespace>";

/// Deletes the admin's objects when the test ends, however it ends.
struct Delete(Vec<[String; 2]>);

impl Drop for Delete {
    fn drop(&mut self) {
        for [kind, name] in &self.0 {
            let args = ["-n", "acme-web-dev", "delete", kind, name, "--ignore-not-found", "--wait=false"];
            let _ = kubectl(kubectl_bin(), admin_kubeconfig(), &args);
        }
    }
}

fn binding(name: &str) -> String {
    format!(
        r#"{{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
  "metadata": {{"name": "{name}", "namespace": "acme-web-dev"}},
  "roleRef": {{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}},
  "subjects": [
    {{"kind": "ServiceAccount", "name": "x", "namespace": "globex-main"}},
    {{"kind": "User", "name": "system:serviceaccount:globex-main:y"}},
    {{"kind": "ServiceAccount", "name": "z", "namespace": "kube-system"}}]}}"#
    )
}

fn deployment(name: &str, namespaces: &str) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {{"name": "{name}", "namespace": "acme-web-dev"}},
  "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "{name}"}}}},
    "template": {{"metadata": {{"labels": {{"app": "{name}"}}}},
      "spec": {{"affinity": {{"podAffinity": {{"requiredDuringSchedulingIgnoredDuringExecution": [
          {{"topologyKey": "kubernetes.io/hostname", "labelSelector": {{"matchLabels": {{"app": "db"}}}},
            "namespaces": {namespaces}}}]}}}},
        "containers": [{{"name": "w", "image": "busybox"}}]}}}}}}}}"#
    )
}

const AFFINITY: &str =
    "{.spec.template.spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaces}";

fn upstream_namespaces(name: &str) -> String {
    let jsonpath = format!("-o=jsonpath={AFFINITY}");
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", "acme-web-dev", "get", "deployment", name, &jsonpath]))
}

/// Asserts a 422 naming the placeholder and `field`, and no physical namespace.
fn refused(output: std::process::Output, field: &str) {
    let err = fails(output);
    assert!(err.contains("is invalid") && err.contains(field) && err.contains("outside view acme/web"), "{err}");
    assert!(!err.contains("globex-main"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_namespace_in_a_field_reads_as_a_placeholder_everywhere() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bin = kubectl_bin();
    let name = unique("hidden");
    let _delete = Delete(vec![["rolebinding".into(), name.clone()]]);
    ok(kubectl_stdin(bin, admin_kubeconfig(), &["apply", "-f", "-"], Some(&binding(&name))));
    let alice = in_view(&canopy, "alice", "acme/web");
    for output in ["json", "yaml", "wide"] {
        // kubectl's JSON escapes `<` and `>`.
        let read = ok(kubectl(bin, &alice, &["-n", "dev", "get", "rolebinding", &name, "-o", output]))
            .replace("\\u003c", "<")
            .replace("\\u003e", ">");
        assert!(read.contains(HIDDEN) && !read.contains("globex"), "-o {output}: {read}");
        assert!(read.contains("kube-system"), "a platform namespace shows as it is: {read}");
    }
    let listed = ok(kubectl(bin, &alice, &["-n", "dev", "get", "rolebindings", "-o", "json"]));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let item = listed["items"].as_array().unwrap().iter().find(|i| i["metadata"]["name"] == name.as_str()).unwrap();
    assert_eq!(item["subjects"][0]["namespace"], HIDDEN);
    assert_eq!(item["subjects"][1]["name"], format!("system:serviceaccount:{HIDDEN}:y"));
    assert_eq!(item["subjects"][2]["namespace"], "kube-system");
    // A watch event (alice's home view is acme, where acme-web-dev is web-dev).
    let watch = canopy
        .http()
        .get(format!(
            "{}/apis/rbac.authorization.k8s.io/v1/namespaces/web-dev/rolebindings?watch=true&timeoutSeconds=2&fieldSelector=metadata.name%3D{name}",
            canopy.url
        ))
        .bearer_auth(Harness::shared().token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    let events = watch.text().await.unwrap();
    assert!(events.contains("ADDED") && events.contains(HIDDEN) && !events.contains("globex"), "{events}");
    // Sent back as read, the subject keeps its stored namespace, which the reference check then
    // refuses, still without naming it.
    let read = ok(kubectl(bin, &alice, &["-n", "dev", "get", "rolebinding", &name, "-o", "json"]));
    let err = fails(kubectl_stdin(bin, &alice, &["replace", "-f", "-"], Some(&read)));
    assert!(err.contains(&format!("subject ServiceAccount {HIDDEN}/x is outside view acme/web")), "{err}");
    assert!(!err.contains("globex"), "{err}");
}

#[test]
fn an_update_keeps_a_hidden_namespace_only_where_it_was_shown() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bin = kubectl_bin();
    let name = unique("affine");
    let _delete = Delete(vec![["deployment".into(), name.clone()]]);
    let stored = deployment(&name, r#"["globex-main", "acme-web-prod"]"#);
    ok(kubectl_stdin(bin, admin_kubeconfig(), &["apply", "-f", "-"], Some(&stored)));
    let bob = as_user(&canopy, "bob");
    let read = ok(kubectl(bin, &bob, &["-n", "dev", "get", "deployment", &name, "-o", "json"]));
    assert!(!read.contains("globex"), "{read}");
    let mut object: serde_json::Value = serde_json::from_str(&read).unwrap();
    let namespaces =
        "/spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/0/namespaces";
    assert_eq!(object.pointer(namespaces).unwrap(), &serde_json::json!([HIDDEN, "prod"]));

    // The placeholder aimed at another list, patched in, or created: 422, nothing changes.
    let mut moved = object.clone();
    *moved.pointer_mut(namespaces).unwrap() = serde_json::json!([HIDDEN]);
    let field =
        "spec.template.spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaces[0]";
    refused(kubectl_stdin(bin, &bob, &["replace", "-f", "-"], Some(&moved.to_string())), field);
    let patch = format!(r#"[{{"op": "replace", "path": "{namespaces}", "value": ["{HIDDEN}"]}}]"#);
    refused(kubectl(bin, &bob, &["-n", "dev", "patch", "deployment", &name, "--type=json", "-p", &patch]), namespaces);
    let other = unique("affine");
    let created = deployment(&other, &format!(r#"["{HIDDEN}"]"#)).replace("acme-web-dev", "dev");
    refused(kubectl_stdin(bin, &bob, &["create", "-f", "-"], Some(&created)), field);
    assert!(!exists_upstream("acme-web-dev", "deployment", &other));
    assert_eq!(upstream_namespaces(&name), r#"["globex-main","acme-web-prod"]"#);

    // Sent back as read with a label added: the stored namespace stays, the label lands.
    object["metadata"]["labels"] = serde_json::json!({"touched": "yes"});
    ok(kubectl_stdin(bin, &bob, &["replace", "-f", "-"], Some(&object.to_string())));
    assert_eq!(upstream_namespaces(&name), r#"["globex-main","acme-web-prod"]"#);
    let label = ["-n", "acme-web-dev", "get", "deployment", &name, "-o=jsonpath={.metadata.labels.touched}"];
    assert_eq!(ok(kubectl(bin, admin_kubeconfig(), &label)), "yes");
}
