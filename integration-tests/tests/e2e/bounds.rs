//! Issue 20: value bounds. The example tree bounds what globex's objects may hold
//! (`tree.nodes[1].bounds`): each constraint type is refused through every kind of write —
//! create, replace (PUT), JSON patch, merge patch, strategic-merge patch, server-side apply —
//! with a `422 Invalid` naming the field, the bound and its reason; nothing changes upstream;
//! a write within the bound passes. Pod bounds hold on pod templates.

use std::time::Duration;

use crate::common::tenants::*;
use crate::common::*;

/// One bound of the example tree and objects on either side of it, in view terms (`main`).
struct Case {
    /// `deployment`, `service`.
    kind: &'static str,
    name: String,
    /// Meets the bound.
    valid: String,
    /// The same object breaking the bound.
    broken: String,
    /// Patches making `valid` into `broken`: JSON patch, then merge (and strategic) patch.
    json_patch: &'static str,
    merge_patch: &'static str,
    /// The field and the bound the refusal names.
    field: &'static str,
    bound: &'static str,
    reason: &'static str,
    /// Whether creating `broken` is refused too (not for immutable fields).
    create_refused: bool,
    /// A JSONPath and the value it reads in `valid`, read back as the admin.
    read_back: (&'static str, &'static str),
    /// A merge patch within the bound, which passes.
    allowed: &'static str,
}

const NS: &str = "globex-main";

fn deployment(name: &str, replicas: u32, image: &str, labels: &str, pod_spec: &str) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "{name}", "namespace": "main"{labels}}},
  "spec": {{"replicas": {replicas}, "selector": {{"matchLabels": {{"app": "{name}"}}}},
    "template": {{"metadata": {{"labels": {{"app": "{name}"}}}},
      "spec": {{{pod_spec}"containers": [{{"name": "c", "image": "{image}"}}]}}}}}}}}"#
    )
}

fn service(name: &str, spec: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "{name}", "namespace": "main"}},
  "spec": {{"ports": [{{"port": 80}}]{spec}}}}}"#
    )
}

const IMAGE: &str = "images.globex.internal/worker:1";

/// `case` refused through every kind of write, changing nothing; then a write within it passes.
fn refused_everywhere(canopy: &Canopy, case: &Case) {
    let dave = as_user(canopy, "dave");
    let bin = kubectl_bin();
    let _ = kubectl(bin, admin_kubeconfig(), &["-n", NS, "delete", case.kind, &case.name, "--ignore-not-found"]);
    let check = |what: &str, refused: String| {
        assert!(refused.contains("is invalid"), "{what}: {refused}");
        assert!(refused.contains(case.field), "{what} names the field {}: {refused}", case.field);
        assert!(
            refused.contains(&format!("bound {}: {}", case.bound, case.reason)),
            "{what} names the bound and its reason: {refused}"
        );
        assert!(!refused.contains(NS), "{what} shows physical names: {refused}");
    };
    if case.create_refused {
        check("create", fails(kubectl_stdin(bin, &dave, &["create", "-f", "-"], Some(&case.broken))));
        assert!(!exists_upstream(NS, case.kind, &case.name), "a refused create created nothing");
        // Server-side apply creating the object is a create too.
        let applied = kubectl_stdin(bin, &dave, &["apply", "--server-side", "-f", "-"], Some(&case.broken));
        check("server-side apply (create)", fails(applied));
        assert!(!exists_upstream(NS, case.kind, &case.name), "a refused apply created nothing");
    }
    ok(kubectl_stdin(bin, &dave, &["create", "-f", "-"], Some(&case.valid)));
    let object = format!("{}/{}", case.kind, case.name);
    let writes: [(&str, Vec<&str>, Option<&str>); 5] = [
        ("replace", vec!["replace", "-f", "-"], Some(case.broken.as_str())),
        ("json patch", vec!["patch", &object, "--type=json", "-p", case.json_patch], None),
        ("merge patch", vec!["patch", &object, "--type=merge", "-p", case.merge_patch], None),
        ("strategic-merge patch", vec!["patch", &object, "--type=strategic", "-p", case.merge_patch], None),
        (
            "server-side apply",
            vec!["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(case.broken.as_str()),
        ),
    ];
    for (what, mut args, stdin) in writes {
        args.extend(["-n", "main"]);
        check(what, fails(kubectl_stdin(bin, &dave, &args, stdin)));
    }
    let (path, value) = case.read_back;
    let read = || ok(kubectl(bin, admin_kubeconfig(), &["-n", NS, "get", &object, "-o", &format!("jsonpath={path}")]));
    assert_eq!(read(), value, "refused writes changed nothing upstream");
    ok(kubectl(bin, &dave, &["-n", "main", "patch", &object, "--type=merge", "-p", case.allowed]));
    ok(kubectl(bin, admin_kubeconfig(), &["-n", NS, "delete", &object]));
}

#[test]
fn a_replica_range_holds_for_every_kind_of_write_and_scale() {
    let _tree = tree::reading();
    let canopy = canopy();
    let worker = |replicas| deployment("queueworker", replicas, IMAGE, "", "");
    let case = Case {
        kind: "deployment",
        name: "queueworker".into(),
        valid: worker(3),
        broken: worker(11),
        json_patch: r#"[{"op": "replace", "path": "/spec/replicas", "value": 11}]"#,
        merge_patch: r#"{"spec": {"replicas": 11}}"#,
        field: "spec.replicas: Invalid value: 11: must be a number between 2 and 10",
        bound: "tree.nodes[1].bounds[3]",
        reason: "the queue needs 2 workers and the database takes 10",
        create_refused: true,
        read_back: ("{.spec.replicas}", "3"),
        allowed: r#"{"spec": {"replicas": 5}}"#,
    };
    refused_everywhere(&canopy, &case);
    // The scale subresource stores the same field; other Deployments are not bounded.
    let dave = as_user(&canopy, "dave");
    ok(kubectl_stdin(kubectl_bin(), &dave, &["create", "-f", "-"], Some(&worker(2))));
    let refused =
        fails(kubectl(kubectl_bin(), &dave, &["-n", "main", "scale", "deployment/queueworker", "--replicas=1"]));
    assert!(refused.contains("spec.replicas") && refused.contains("tree.nodes[1].bounds[3]"), "{refused}");
    ok(kubectl(kubectl_bin(), &dave, &["-n", "main", "scale", "deployment/queueworker", "--replicas=10"]));
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", NS, "delete", "deployment", "queueworker"]));
    let other = unique("other");
    ok(kubectl_stdin(kubectl_bin(), &dave, &["create", "-f", "-"], Some(&deployment(&other, 1, IMAGE, "", ""))));
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", NS, "delete", "deployment", &other]));
}

#[test]
fn an_enum_holds_for_every_kind_of_write() {
    let _tree = tree::reading();
    let canopy = canopy();
    let name = unique("svc-type");
    refused_everywhere(
        &canopy,
        &Case {
            kind: "service",
            name: name.clone(),
            valid: service(&name, r#", "type": "ClusterIP""#),
            broken: service(&name, r#", "type": "LoadBalancer""#),
            json_patch: r#"[{"op": "replace", "path": "/spec/type", "value": "LoadBalancer"}]"#,
            merge_patch: r#"{"spec": {"type": "LoadBalancer"}}"#,
            field: r#"spec.type: Invalid value: "LoadBalancer": must be one of "ClusterIP", "NodePort""#,
            bound: "tree.nodes[1].bounds[1]",
            reason: "load balancers are ordered from the platform team",
            create_refused: true,
            read_back: ("{.spec.type}", "ClusterIP"),
            allowed: r#"{"spec": {"type": "NodePort"}}"#,
        },
    );
}

#[test]
fn a_pattern_holds_for_every_kind_of_write_on_pod_templates_and_pods() {
    let _tree = tree::reading();
    let canopy = canopy();
    let name = unique("images");
    refused_everywhere(
        &canopy,
        &Case {
            kind: "deployment",
            name: name.clone(),
            valid: deployment(&name, 1, IMAGE, "", ""),
            broken: deployment(&name, 1, "busybox", "", ""),
            json_patch: r#"[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "busybox"}]"#,
            merge_patch: r#"{"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}"#,
            field: r#"spec.template.spec.containers[0].image: Invalid value: "busybox": must be a string matching"#,
            bound: "tree.nodes[1].bounds[2]",
            reason: "images come from images.globex.internal",
            create_refused: true,
            read_back: ("{.spec.template.spec.containers[0].image}", IMAGE),
            allowed: r#"{"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "images.globex.internal/worker:2"}]}}}}"#,
        },
    );
    // A pod itself, and `kubectl run`.
    let dave = as_user(&canopy, "dave");
    let pod = unique("pod");
    let refused =
        fails(kubectl(kubectl_bin(), &dave, &["-n", "main", "run", &pod, "--image=busybox", "--restart=Never"]));
    assert!(refused.contains(r#"The Pod "#) && refused.contains("spec.containers[0].image"), "{refused}");
    assert!(!exists_upstream(NS, "pod", &pod));
}

#[test]
fn absence_holds_for_every_kind_of_write() {
    let _tree = tree::reading();
    let canopy = canopy();
    let name = unique("svc-ips");
    refused_everywhere(
        &canopy,
        &Case {
            kind: "service",
            name: name.clone(),
            valid: service(&name, ""),
            broken: service(&name, r#", "externalIPs": ["203.0.113.7"]"#),
            json_patch: r#"[{"op": "add", "path": "/spec/externalIPs", "value": ["203.0.113.7"]}]"#,
            merge_patch: r#"{"spec": {"externalIPs": ["203.0.113.7"]}}"#,
            field: r#"spec.externalIPs: Invalid value: ["203.0.113.7"]: must not be set"#,
            bound: "tree.nodes[1].bounds[0]",
            reason: "external IPs are assigned by the platform",
            create_refused: true,
            read_back: ("{.spec.externalIPs}", ""),
            allowed: r#"{"spec": {"ports": [{"port": 8080}]}}"#,
        },
    );
}

#[test]
fn an_immutable_field_is_set_at_create_and_never_changed() {
    let _tree = tree::reading();
    let canopy = canopy();
    let name = unique("billed");
    let labelled = |team: &str| deployment(&name, 1, IMAGE, &format!(r#", "labels": {{"cost-center": "{team}"}}"#), "");
    refused_everywhere(
        &canopy,
        &Case {
            kind: "deployment",
            name: name.clone(),
            valid: labelled("a"),
            broken: labelled("b"),
            json_patch: r#"[{"op": "replace", "path": "/metadata/labels/cost-center", "value": "b"}]"#,
            merge_patch: r#"{"metadata": {"labels": {"cost-center": "b"}}}"#,
            field: r#"metadata.labels.cost-center: Invalid value: "b": field is immutable"#,
            bound: "tree.nodes[1].bounds[6]",
            reason: "costs are billed to the team that created it",
            create_refused: false,
            read_back: ("{.metadata.labels.cost-center}", "a"),
            allowed: r#"{"metadata": {"labels": {"other": "x"}}}"#,
        },
    );
    // Removing it is a change too; leaving it out of a merge patch is not.
    let dave = as_user(&canopy, "dave");
    ok(kubectl_stdin(kubectl_bin(), &dave, &["create", "-f", "-"], Some(&labelled("a"))));
    let removed = fails(kubectl(kubectl_bin(), &dave, &["-n", "main", "label", "deployment", &name, "cost-center-"]));
    assert!(removed.contains("metadata.labels.cost-center") && removed.contains("immutable"), "{removed}");
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", NS, "delete", "deployment", &name]));
}

#[test]
fn host_namespaces_are_refused_in_pod_templates() {
    let _tree = tree::reading();
    let canopy = canopy();
    let dave = as_user(&canopy, "dave");
    let name = unique("host");
    for (field, bound) in [("hostNetwork", "tree.nodes[1].bounds[4]"), ("hostPID", "tree.nodes[1].bounds[5]")] {
        let manifest = deployment(&name, 1, IMAGE, "", &format!(r#""{field}": true, "#));
        let refused = fails(kubectl_stdin(kubectl_bin(), &dave, &["create", "-f", "-"], Some(&manifest)));
        assert!(
            refused.contains(r#"The Deployment "#) && refused.contains(&format!("spec.template.spec.{field}")),
            "{refused}"
        );
        assert!(refused.contains(bound), "{refused}");
        assert!(!exists_upstream(NS, "deployment", &name));
    }
    // A CronJob's template is a pod template too.
    let cron = format!(
        r#"{{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {{"name": "{name}", "namespace": "main"}},
  "spec": {{"schedule": "0 0 * * *", "jobTemplate": {{"spec": {{"template": {{"spec": {{"hostNetwork": true,
    "restartPolicy": "Never", "containers": [{{"name": "c", "image": "{IMAGE}"}}]}}}}}}}}}}}}"#
    );
    let refused = fails(kubectl_stdin(kubectl_bin(), &dave, &["create", "-f", "-"], Some(&cron)));
    assert!(refused.contains("spec.jobTemplate.spec.template.spec.hostNetwork"), "{refused}");
    // The audit log records the refusal with the bound.
    eventually(Duration::from_secs(5), "the audit line", || {
        canopy.audit().iter().any(|line| {
            line["decision"] == "denied"
                && line["reason"].as_str().is_some_and(|r| r.contains("tree.nodes[1].bounds[4]"))
        })
    });
}

#[test]
fn a_reload_with_a_bad_bound_keeps_the_bounds_in_force() {
    let _tree = tree::reading();
    let canopy = canopy();
    let dave = as_user(&canopy, "dave");
    let original = std::fs::read_to_string(&canopy.config).unwrap();
    let bad = original.replace("min: 2, max: 10", "min: 12, max: 10");
    assert_ne!(bad, original);
    std::fs::write(&canopy.config, &bad).unwrap();
    eventually(Duration::from_secs(5), "the refusal in the log", || {
        canopy.log().contains("configuration reload refused")
    });
    assert!(canopy.log().contains("tree.nodes[1].bounds[3].min"), "{}", canopy.log());
    let name = unique("lb");
    let refused = fails(kubectl_stdin(
        kubectl_bin(),
        &dave,
        &["create", "-f", "-"],
        Some(&service(&name, r#", "type": "LoadBalancer""#)),
    ));
    assert!(refused.contains("tree.nodes[1].bounds[1]"), "{refused}");
}

/// A bound on acme's RoleBindings whose values are namespace names, as stored: the subjects'
/// namespaces, `acme-web-dev` only (`tree.nodes[0].bounds[0]`).
const SUBJECTS_BOUND: &str = "      bounds:
        - {resource: rolebindings.rbac.authorization.k8s.io, path: '$.subjects[*].namespace', enum: [acme-web-dev, globex-main],
           reason: service accounts of acme-web-dev or globex-main only}
";

#[test]
fn a_bound_refusal_shows_namespaces_in_the_callers_view_and_no_other_tenants() {
    let _tree = tree::reading();
    let canopy = canopy();
    let original = std::fs::read_to_string(&canopy.config).unwrap();
    let children = "      children:\n        - name: web\n";
    assert!(original.contains(children));
    std::fs::write(&canopy.config, original.replacen(children, &format!("{SUBJECTS_BOUND}{children}"), 1)).unwrap();
    eventually(Duration::from_secs(5), "the reload", || canopy.log().contains("configuration reloaded"));
    // The references the bindings make exist, so only the bound refuses them.
    let account = unique("sa");
    let label = format!("test={account}");
    for physical in ["acme-web-dev", "acme-web-prod"] {
        ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", physical, "create", "serviceaccount", &account]));
    }
    let binding = |namespace: &str, subject_namespace: &str| {
        format!(
            r#"{{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
  "metadata": {{"name": "{}", "namespace": "{namespace}", "labels": {{"test": "{account}"}}}},
  "roleRef": {{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}},
  "subjects": [{{"kind": "ServiceAccount", "name": "{account}", "namespace": "{subject_namespace}"}}]}}"#,
            unique("rb")
        )
    };
    // Alice (admin at acme) in view acme, then in view acme/web: the same write, each in its names.
    for (view, namespace, prod, dev) in [("acme", "web-dev", "web-prod", "web-dev"), ("acme/web", "dev", "prod", "dev")]
    {
        let alice = in_view(&canopy, "alice", view);
        let refused =
            fails(kubectl_stdin(kubectl_bin(), &alice, &["create", "-f", "-"], Some(&binding(namespace, prod))));
        assert!(
            refused.contains(&format!(
                r#"subjects[0].namespace: Invalid value: "{prod}": must be one of "{dev}", "<another namespace>" (bound tree.nodes[0].bounds[0]: service accounts of {dev} or <another namespace> only)"#
            )),
            "in view {view}: {refused}"
        );
        assert!(!refused.contains("acme-") && !refused.contains("globex"), "in view {view}: {refused}");
        // Within the bound, the write passes.
        ok(kubectl_stdin(kubectl_bin(), &alice, &["create", "-f", "-"], Some(&binding(namespace, dev))));
    }
    // The JSON answer's causes too, read as a client library reads them.
    let token = Harness::shared().token("alice");
    let body = binding("web-dev", "web-prod");
    let answer = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let response = canopy
            .http()
            .post(format!("{}/v/acme/apis/rbac.authorization.k8s.io/v1/namespaces/web-dev/rolebindings", canopy.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(answer.0, 422, "{}", answer.1);
    let status: serde_json::Value = serde_json::from_str(&answer.1).unwrap();
    assert_eq!(status["details"]["causes"][0]["field"], "subjects[0].namespace");
    assert!(!answer.1.contains("acme-") && !answer.1.contains("globex"), "{}", answer.1);
    for physical in ["acme-web-dev", "acme-web-prod"] {
        ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", physical, "delete", "serviceaccount", &account]));
    }
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", "acme-web-dev", "delete", "rolebindings", "-l", &label]));
}
