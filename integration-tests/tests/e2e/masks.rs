//! Field masks (design invariant 4), against the real apiserver through the example tree: acme's
//! tenants never see where their pods run (`spec.nodeName`, `status.hostIP(s)`; the harness's
//! fake kubelet binds every pod to `fake-node`), nor learn it from events, and cannot pin them
//! (`nodeSelector`, `tolerations`, `priorityClassName` write-masked on pods and Deployment
//! templates); readers see secrets' names, not their contents; globex reads nodes without their
//! addresses.

use std::path::Path;
use std::time::Duration;

use crate::common::tenants::*;
use crate::common::*;
use serde_json::Value;

const NODE: &str = "fake-node";

fn admin() -> &'static Path {
    Path::new(Harness::shared().var("ADMIN_KUBECONFIG"))
}

fn admin_json(namespace: &str, what: &[&str]) -> Value {
    let text = ok(kubectl(kubectl_bin(), admin(), &[&["-n", namespace, "get"], what, &["-o", "json"]].concat()));
    serde_json::from_str(&text).unwrap()
}

fn pod_manifest(name: &str, extra_spec: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "labels": {{"app": "masked"}}}},
            "spec": {{"containers": [{{"name": "c", "image": "busybox"}}]{extra_spec}}}}}"#
    )
}

/// A pod bob created and the fake kubelet bound to the node and started.
fn running_pod(bob: &Path) -> String {
    let name = unique("masked");
    ok(kubectl_stdin(kubectl_bin(), bob, &["-n", "dev", "apply", "-f", "-"], Some(&pod_manifest(&name, ""))));
    eventually(Duration::from_secs(20), "the pod to run", || {
        admin_json("acme-web-dev", &["pod", &name])["status"]["hostIP"].is_string()
    });
    name
}

fn assert_placement_hidden(what: &str, text: &str) {
    for hidden in [NODE, "\"nodeName\"", "nodeName:", "\"hostIP", "hostIP:", "hostIPs:", "f:nodeName"] {
        assert!(!text.contains(hidden), "{what} shows {hidden}: {text}");
    }
}

#[test]
fn pod_placement_is_hidden_from_every_answer() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let pod = running_pod(&bob);
    for bin in Harness::shared().kubectls() {
        for args in [
            vec!["-n", "dev", "get", "pod", &pod, "-o", "json"],
            vec!["-n", "dev", "get", "pod", &pod, "-o", "yaml", "--show-managed-fields"],
            vec!["-n", "dev", "get", "pods", "-o", "json"],
            vec!["-n", "dev", "get", "pods", "-o", "wide"],
            vec!["-n", "dev", "get", "pods", "-o", "wide", "--chunk-size", "1"],
            vec!["get", "pods", "-A", "-o", "wide"],
            vec!["get", "pods", "-A", "-o", "json"],
            vec!["-n", "dev", "describe", "pod", &pod],
        ] {
            let shown = ok(kubectl(&bin, &bob, &args));
            assert!(shown.contains(&pod), "{args:?}: {shown}");
            assert_placement_hidden(&format!("{args:?}"), &shown);
        }
        let wide = ok(kubectl(&bin, &bob, &["-n", "dev", "get", "pod", &pod, "-o", "wide"]));
        assert!(wide.contains("<masked>"), "the NODE column is masked: {wide}");
    }
    // The stored pod is untouched: the mask is a view.
    assert_eq!(admin_json("acme-web-dev", &["pod", &pod])["spec"]["nodeName"], NODE);
    // Every role of the subtree sees the same view, from any node of it.
    let alice = in_view(&canopy, "alice", "acme/web");
    assert_placement_hidden(
        "alice",
        &ok(kubectl(kubectl_bin(), &alice, &["-n", "dev", "get", "pod", &pod, "-o", "json"])),
    );
    ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "delete", "pod", &pod, "--wait=false"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_hide_pod_placement() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let token = Harness::shared().token("bob").to_owned();
    let http = canopy.http();
    let pod = tokio::task::spawn_blocking(move || running_pod(&bob)).await.unwrap();
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
    for (path, accept) in [
        ("/api/v1/namespaces/dev/pods?watch=1&timeoutSeconds=2", "application/json"),
        ("/api/v1/namespaces/dev/pods?watch=1&timeoutSeconds=2", table),
        ("/api/v1/pods?watch=1&timeoutSeconds=2", "application/json"),
    ] {
        let answer = http
            .get(format!("{}{path}", canopy.url))
            .bearer_auth(&token)
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        let text = answer.text().await.unwrap();
        assert!(text.contains(&pod), "{path} {accept}: {text}");
        assert_placement_hidden(&format!("{path} {accept}"), &text);
    }
    let bob = as_user(&canopy, "bob");
    ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "delete", "pod", &pod, "--wait=false"]));
}

#[test]
fn updates_of_a_view_keep_what_it_hides() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let pod = running_pod(&bob);
    // kubectl apply of the manifest, with a new label (first: edit and replace then record the
    // whole object as last applied, as they do without Canopy).
    let manifest = pod_manifest(&pod, "").replace(r#""app": "masked""#, r#""app": "masked", "applied": "again""#);
    ok(kubectl_stdin(kubectl_bin(), &bob, &["-n", "dev", "apply", "-f", "-"], Some(&manifest)));
    // A full update (kubectl replace) of the object as the view shows it.
    let mut shown: Value =
        serde_json::from_str(&ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "get", "pod", &pod, "-o", "json"])))
            .unwrap();
    shown["metadata"]["labels"]["replaced"] = "first".into();
    ok(kubectl_stdin(kubectl_bin(), &bob, &["-n", "dev", "replace", "-f", "-"], Some(&shown.to_string())));
    // kubectl edit, with sed as the editor.
    ok(kubectl_env(
        kubectl_bin(),
        &bob,
        &[("KUBE_EDITOR", "sed -i -e s/replaced:\\ first/replaced:\\ second/")],
        &["-n", "dev", "edit", "pod", &pod],
        None,
    ));
    let stored = admin_json("acme-web-dev", &["pod", &pod]);
    assert_eq!(stored["metadata"]["labels"]["replaced"], "second");
    assert_eq!(stored["metadata"]["labels"]["applied"], "again");
    assert_eq!(stored["spec"]["nodeName"], NODE, "{stored}");
    assert_eq!(stored["status"]["hostIP"], "127.0.0.1");
    ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "delete", "pod", &pod, "--wait=false"]));
}

/// Asserts a refusal by Canopy naming `field`.
fn refused(output: std::process::Output, field: &str) {
    let text = fails(output);
    assert!(text.contains("(Forbidden)") && text.contains(field) && text.contains("masked in view"), "{text}");
    assert!(!text.contains("acme-"), "{text}");
}

#[test]
fn write_masks_refuse_every_kind_of_write() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let bin = kubectl_bin();
    let ns = ["-n", "dev"];
    // Creating a pod pinned to a node, or pinning its placement.
    let pinned = pod_manifest(&unique("pinned"), r#", "nodeName": "fake-node""#);
    refused(kubectl_stdin(bin, &bob, &[&ns[..], &["create", "-f", "-"]].concat(), Some(&pinned)), "spec.nodeName");
    let selected = pod_manifest(&unique("selected"), r#", "nodeSelector": {"disk": "ssd"}"#);
    refused(kubectl_stdin(bin, &bob, &[&ns[..], &["apply", "-f", "-"]].concat(), Some(&selected)), "spec.nodeSelector");

    // A Deployment's template is open to every patch type but the masked fields.
    let name = unique("deploy");
    ok(kubectl(bin, &bob, &[&ns[..], &["create", "deployment", &name, "--image=busybox"]].concat()));
    let patch = |kind: &str, body: &str| {
        kubectl(bin, &bob, &[&ns[..], &["patch", "deployment", &name, "--type", kind, "-p", body]].concat())
    };
    refused(patch("strategic", r#"{"spec":{"template":{"spec":{"nodeSelector":{"disk":"ssd"}}}}}"#), "nodeSelector");
    refused(
        patch("merge", r#"{"spec":{"template":{"spec":{"tolerations":[{"key":"k","operator":"Exists"}]}}}}"#),
        "tolerations",
    );
    refused(
        patch("json", r#"[{"op":"add","path":"/spec/template/spec/priorityClassName","value":"high"}]"#),
        "priorityClassName",
    );
    let applied = format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"{name}"}},"spec":{{"template":{{"spec":{{"nodeName":"fake-node"}}}}}}}}"#
    );
    refused(
        kubectl_stdin(
            bin,
            &bob,
            &[&ns[..], &["apply", "--server-side", "--force-conflicts", "-f", "-"]].concat(),
            Some(&applied),
        ),
        "nodeName",
    );
    // Other changes pass, and refused writes changed nothing.
    ok(patch("merge", r#"{"spec":{"replicas":2,"template":{"metadata":{"labels":{"tier":"web"}}}}}"#));
    let stored = admin_json("acme-web-dev", &["deployment", &name]);
    let spec = &stored["spec"]["template"]["spec"];
    assert!(spec.get("nodeSelector").is_none() && spec.get("tolerations").is_none(), "{stored}");
    assert!(spec.get("priorityClassName").is_none() && spec.get("nodeName").is_none(), "{stored}");
    assert_eq!(stored["spec"]["replicas"], 2);

    // A JSON patch may not even test a hidden field: its answer would reveal the value.
    let pod = running_pod(&bob);
    let probe = r#"[{"op":"test","path":"/spec/nodeName","value":"fake-node"}]"#;
    refused(
        kubectl(bin, &bob, &[&ns[..], &["patch", "pod", &pod, "--type", "json", "-p", probe]].concat()),
        "spec.nodeName",
    );
    let copy = r#"[{"op":"copy","from":"/spec/nodeName","path":"/metadata/labels/node"}]"#;
    refused(
        kubectl(bin, &bob, &[&ns[..], &["patch", "pod", &pod, "--type", "json", "-p", copy]].concat()),
        "spec.nodeName",
    );
    // Adding a toleration is a change the apiserver allows on a pod; the mask does not.
    let tolerate = r#"[{"op":"add","path":"/spec/tolerations/-","value":{"key":"k","operator":"Exists"}}]"#;
    refused(
        kubectl(bin, &bob, &[&ns[..], &["patch", "pod", &pod, "--type", "json", "-p", tolerate]].concat()),
        "spec.tolerations",
    );
    assert!(admin_json("acme-web-dev", &["pod", &pod])["metadata"]["labels"].get("node").is_none());
    ok(kubectl(bin, &bob, &[&ns[..], &["delete", "deployment", &name]].concat()));
    ok(kubectl(bin, &bob, &[&ns[..], &["delete", "pod", &pod, "--wait=false"]].concat()));
}

/// Lets carol read secrets in her namespace upstream (the built-in view role does not) while it
/// lives; other tests expect her to be refused.
struct SecretReader;

impl SecretReader {
    const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: e2e-secret-reader, namespace: acme-data-warehouse}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-secret-reader-carol, namespace: acme-data-warehouse}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e2e-secret-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
"#;

    fn grant() -> Self {
        ok(kubectl_stdin(kubectl_bin(), admin(), &["apply", "-f", "-"], Some(Self::RBAC)));
        SecretReader
    }
}

impl Drop for SecretReader {
    fn drop(&mut self) {
        let _ = kubectl_stdin(kubectl_bin(), admin(), &["delete", "--ignore-not-found", "-f", "-"], Some(Self::RBAC));
    }
}

#[test]
fn readers_see_secret_names_not_contents() {
    let _tree = tree::reading();
    let canopy = canopy();
    let name = unique("contents");
    let _reader = SecretReader::grant();
    ok(kubectl(
        kubectl_bin(),
        admin(),
        &["-n", "acme-data-warehouse", "create", "secret", "generic", &name, "--from-literal=password=hunter2"],
    ));
    let carol = as_user(&canopy, "carol");
    eventually(Duration::from_secs(10), "carol's secret access", || {
        kubectl(kubectl_bin(), &carol, &["-n", "warehouse", "get", "secret", &name]).status.success()
    });
    let encoded = "aHVudGVyMg=="; // hunter2
    for args in [
        vec!["get", "secret", &name, "-o", "json"],
        vec!["get", "secrets", "-o", "yaml"],
        vec!["get", "secrets", "-o", "wide"],
        vec!["get", "secrets", "-A", "-o", "json"],
        vec!["describe", "secret", &name],
    ] {
        let args = [&["-n", "warehouse"][..], &args].concat();
        let shown = ok(kubectl(kubectl_bin(), &carol, &args));
        assert!(shown.contains(&name), "{args:?}: {shown}");
        assert!(!shown.contains(encoded) && !shown.contains("password"), "{args:?}: {shown}");
    }
    let one: Value = serde_json::from_str(&ok(kubectl(
        kubectl_bin(),
        &carol,
        &["-n", "warehouse", "get", "secret", &name, "-o", "json"],
    )))
    .unwrap();
    assert_eq!(one["type"], "Opaque");
    // The platform's admin role at acme is not masked.
    let alice = in_view(&canopy, "alice", "acme/data");
    let full = ok(kubectl(kubectl_bin(), &alice, &["-n", "warehouse", "get", "secret", &name, "-o", "json"]));
    assert!(full.contains(encoded), "{full}");
    ok(kubectl(kubectl_bin(), admin(), &["-n", "acme-data-warehouse", "delete", "secret", &name]));
}

#[test]
fn nodes_are_readable_without_addresses() {
    let _tree = tree::reading();
    let canopy = canopy();
    // Upstream RBAC lets dave read nodes; Canopy's tree allows it for globex and masks addresses.
    let rbac = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-node-reader}
rules: [{apiGroups: [""], resources: [nodes], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-node-reader-dave}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-node-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: dave}]
"#;
    ok(kubectl_stdin(kubectl_bin(), admin(), &["apply", "-f", "-"], Some(rbac)));
    let dave = as_user(&canopy, "dave");
    eventually(Duration::from_secs(10), "dave's node access", || {
        kubectl(kubectl_bin(), &dave, &["get", "nodes"]).status.success()
    });
    for args in [
        vec!["get", "nodes", "-o", "wide"],
        vec!["get", "node", NODE, "-o", "json"],
        vec!["get", "nodes", "-o", "yaml"],
    ] {
        let shown = ok(kubectl(kubectl_bin(), &dave, &args));
        assert!(shown.contains(NODE), "{args:?}: {shown}");
        assert!(!shown.contains("127.0.0.1") && !shown.contains("InternalIP"), "{args:?}: {shown}");
    }
    let direct = ok(kubectl(kubectl_bin(), admin(), &["get", "node", NODE, "-o", "json"]));
    assert!(direct.contains("InternalIP"), "the node itself keeps its addresses: {direct}");
}

#[test]
fn events_do_not_name_the_node() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let pod = running_pod(&bob);
    // The kubelet's event about bob's pod, as a real kubelet on `fake-node` reports it.
    let name = unique("started");
    let event = format!(
        r#"{{"apiVersion": "v1", "kind": "Event", "metadata": {{"name": "{name}"}},
            "involvedObject": {{"apiVersion": "v1", "kind": "Pod", "name": "{pod}", "namespace": "acme-web-dev"}},
            "reason": "Started", "message": "Started container c", "type": "Normal", "count": 1,
            "source": {{"component": "kubelet", "host": "{NODE}"}}, "reportingInstance": "{NODE}",
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}}"#
    );
    ok(kubectl_stdin(kubectl_bin(), admin(), &["-n", "acme-web-dev", "create", "-f", "-"], Some(&event)));
    for args in [
        vec!["-n", "dev", "get", "event", &name, "-o", "json"],
        vec!["-n", "dev", "get", "events", "-o", "yaml"],
        vec!["-n", "dev", "get", "events", "-o", "wide"],
        vec!["-n", "dev", "events"],
        vec!["-n", "dev", "describe", "pod", &pod],
        vec!["get", "events", "-A", "-o", "json"],
    ] {
        let shown = ok(kubectl(kubectl_bin(), &bob, &args));
        assert!(shown.contains("Started"), "{args:?} shows the event: {shown}");
        assert!(!shown.contains(NODE), "{args:?} names the node: {shown}");
    }
    let direct = admin_json("acme-web-dev", &["event", &name]);
    assert_eq!(direct["source"]["host"], NODE, "the stored event keeps its host: {direct}");
}

#[test]
fn kubectl_debug_of_a_masked_pod_gets_the_apiservers_reason() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let name = unique("debugged");
    ok(kubectl_stdin(kubectl_bin(), &bob, &["-n", "dev", "create", "-f", "-"], Some(&pod_manifest(&name, ""))));
    let refused = fails(kubectl(
        kubectl_bin(),
        &bob,
        &["-n", "dev", "debug", &name, "--image=busybox", "--profile=general", "--", "true"],
    ));
    // bob's edit role does not grant ephemeral containers: that is what helps him, not the masks.
    assert!(
        refused.contains(r#"cannot patch resource "pods/ephemeralcontainers""#) && !refused.contains("acme-web-"),
        "{refused}"
    );
    ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "delete", "pod", &name, "--wait=false"]));
}
