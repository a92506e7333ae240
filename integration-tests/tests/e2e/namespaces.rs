//! Namespaces tenants create and delete through Canopy, against the real apiserver: named under
//! the view's prefix, labelled into the tree (so members' RoleBindings follow), within quota,
//! never over a child's prefix, and deletable only when tenant-created. Every namespace made
//! here is deleted before the test returns, so other suites' exact namespace lists hold.

use std::path::Path;
use std::time::Duration;

use crate::common::tenants::*;
use crate::common::*;

#[test]
fn tenants_create_use_and_delete_namespaces_in_their_view() {
    let _tree = tree::changing();
    let canopy = canopy();
    let mut cleanup = NamespaceCleanup(Vec::new());
    let bob = as_user(&canopy, "bob");
    let name = unique("feature");
    cleanup.0.push(format!("acme-web-{name}"));
    ok(kubectl(kubectl_bin(), &bob, &["create", "namespace", &name]));
    let listed = ok(kubectl(kubectl_bin(), &bob, &["get", "namespaces", "-o", "name"]));
    assert!(listed.contains(&format!("namespace/{name}")) && !listed.contains("acme-"), "{listed}");
    // Physically under acme/web's prefix, with the tree's labels.
    let admin = Path::new(Harness::shared().var("ADMIN_KUBECONFIG"));
    let labels = ok(kubectl(
        kubectl_bin(),
        admin,
        &["get", "namespace", &format!("acme-web-{name}"), "-o", "jsonpath={.metadata.labels}"],
    ));
    assert!(
        labels.contains("acme-web.tree.canopy.dev/depth") && labels.contains("\"tree.canopy.dev/node\":\"acme-web\""),
        "{labels}"
    );
    // Bob's edit role follows him there (the reconciler binds him), and the ancestor view sees it.
    eventually(Duration::from_secs(20), "bob's RoleBinding in the new namespace", || {
        kubectl(kubectl_bin(), &bob, &["-n", &name, "create", "configmap", "hello"]).status.success()
    });
    let alice = in_view(&canopy, "alice", "acme");
    let seen =
        ok(kubectl(kubectl_bin(), &alice, &["-n", &format!("web-{name}"), "get", "configmap", "hello", "-o", "name"]));
    assert_eq!(seen.trim(), "configmap/hello");
    let across =
        ok(kubectl(kubectl_bin(), &bob, &["get", "configmaps", "-A", "--field-selector", "metadata.name=hello"]));
    assert!(across.lines().any(|l| l.starts_with(&name)), "{across}");

    // Others: another tenant cannot see it; a reader cannot create; declared namespaces stay.
    let dave = fails(kubectl(kubectl_bin(), &as_user(&canopy, "dave"), &["get", "namespace", &name]));
    assert!(dave.contains("(NotFound)") && !dave.contains("acme-"), "{dave}");
    let carol = fails(kubectl(kubectl_bin(), &as_user(&canopy, "carol"), &["create", "namespace", "mine"]));
    assert!(carol.contains("(Forbidden)"), "{carol}");
    let declared = fails(kubectl(kubectl_bin(), &bob, &["delete", "namespace", "dev"]));
    assert!(declared.contains("(Forbidden)") && declared.contains("declares"), "{declared}");
    let reserved = fails(kubectl(kubectl_bin(), &alice, &["create", "namespace", "web-sneaky"]));
    assert!(reserved.contains("(Forbidden)") && reserved.contains("acme/web"), "{reserved}");
    let exists = fails(kubectl(kubectl_bin(), &bob, &["create", "namespace", &name]));
    assert!(exists.contains("(AlreadyExists)") && !exists.contains("acme-web-"), "{exists}");

    ok(kubectl(kubectl_bin(), &bob, &["delete", "namespace", &name, "--wait=false"]));
}

#[test]
fn the_quota_counts_every_namespace_of_the_view() {
    let _tree = tree::changing();
    let canopy = canopy();
    let mut cleanup = NamespaceCleanup(Vec::new());
    let bob = as_user(&canopy, "bob");
    // acme/web holds dev and prod; the ceiling it inherits from acme allows ten in all.
    let mut refused = None;
    for i in 0..9 {
        let name = unique(&format!("q{i}"));
        let output = kubectl(kubectl_bin(), &bob, &["create", "namespace", &name]);
        if output.status.success() {
            cleanup.0.push(format!("acme-web-{name}"));
        } else {
            refused = Some((cleanup.0.len(), String::from_utf8_lossy(&output.stderr).into_owned()));
            break;
        }
    }
    let (created, message) = refused.expect("the quota never refused a namespace");
    assert_eq!(created, 8, "{message}");
    assert!(message.contains("(Forbidden)") && message.contains("quota is 10"), "{message}");
}

#[test]
fn the_platforms_namespace_labels_are_set_on_every_namespace_and_enforced() {
    let _tree = tree::changing();
    let canopy = canopy();
    let mut cleanup = NamespaceCleanup(Vec::new());
    let bob = as_user(&canopy, "bob");
    let name = unique("secured");
    cleanup.0.push(format!("acme-web-{name}"));
    ok(kubectl(kubectl_bin(), &bob, &["create", "namespace", &name]));
    let enforce = "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}";
    // Upstream and in the tenant's own view, on the new namespace and on a declared one.
    let admin = admin_kubeconfig();
    assert_eq!(
        ok(kubectl(kubectl_bin(), admin, &["get", "namespace", &format!("acme-web-{name}"), "-o", enforce])),
        "baseline"
    );
    assert_eq!(ok(kubectl(kubectl_bin(), &bob, &["get", "namespace", &name, "-o", enforce])), "baseline");
    eventually(Duration::from_secs(20), "the reconciler to label a declared namespace", || {
        ok(kubectl(kubectl_bin(), admin, &["get", "namespace", "acme-web-dev", "-o", enforce])) == "baseline"
    });
    // The apiserver's PodSecurity admission acts on it.
    let privileged = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"}, "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}}"#;
    // (once the reconciler has bound bob there)
    eventually(Duration::from_secs(20), "PodSecurity to refuse a privileged pod", || {
        let output = kubectl_stdin(kubectl_bin(), &bob, &["-n", &name, "create", "-f", "-"], Some(privileged));
        assert!(!output.status.success(), "a privileged pod was admitted");
        String::from_utf8_lossy(&output.stderr).contains("violates PodSecurity \"baseline")
    });
    // A tenant can neither pick another level nor take the label off.
    let namespace = format!(
        r#"{{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "{name}-2", "labels": {{"pod-security.kubernetes.io/enforce": "privileged"}}}}}}"#
    );
    let sneaky = fails(kubectl_stdin(kubectl_bin(), &bob, &["create", "-f", "-"], Some(&namespace)));
    assert!(sneaky.contains("(Forbidden)") && sneaky.contains("pod-security.kubernetes.io/enforce"), "{sneaky}");
    let removed =
        fails(kubectl(kubectl_bin(), &bob, &["label", "namespace", &name, "pod-security.kubernetes.io/enforce-"]));
    assert!(removed.contains("(Forbidden)"), "{removed}");
}

#[test]
fn namespaces_take_generated_names_show_their_status_and_their_verbs() {
    let _tree = tree::changing();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let namespace = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"generateName": "gen-"}}"#;
    let created = ok(kubectl_stdin(kubectl_bin(), &bob, &["create", "-f", "-", "-o", "name"], Some(namespace)));
    let name = created.trim().strip_prefix("namespace/").unwrap_or_else(|| panic!("{created}")).to_owned();
    let _cleanup = NamespaceCleanup(vec![format!("acme-web-{name}")]);
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let physical = format!("acme-web-{name}");
    assert!(kubectl(kubectl_bin(), admin_kubeconfig(), &["get", "namespace", &physical]).status.success());
    let status = ok(kubectl(kubectl_bin(), &bob, &["get", "--raw", &format!("/api/v1/namespaces/{name}/status")]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["metadata"]["name"], name.as_str());
    assert_eq!(status["status"]["phase"], "Active");
    let resources = ok(kubectl(kubectl_bin(), &bob, &["api-resources", "--cached=false", "-o", "wide"]));
    let line = resources.lines().find(|l| l.starts_with("namespaces ")).unwrap_or_else(|| panic!("{resources}"));
    assert!(line.contains("create,delete,get,list,patch,update,watch"), "{line}");
}

#[test]
fn namespace_labels_follow_one_rule_at_create_and_on_every_later_write() {
    let _tree = tree::changing();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let name = unique("labelled");
    let _cleanup = NamespaceCleanup(vec![format!("acme-web-{name}")]);
    let physical = format!("acme-web-{name}");
    let k = |args: &[&str]| kubectl(kubectl_bin(), &bob, args);
    let team = |who: &Path, name: &str| {
        ok(kubectl(kubectl_bin(), who, &["get", "namespace", name, "-o", "jsonpath={.metadata.labels.team}"]))
    };
    // The ceiling lists `team`: set at create, changed, removed, applied and replaced.
    let created = format!(
        r#"{{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "{name}", "labels": {{"team": "a"}}}}}}"#
    );
    ok(kubectl_stdin(kubectl_bin(), &bob, &["create", "-f", "-"], Some(&created)));
    ok(k(&["label", "namespace", &name, "team=b", "--overwrite"]));
    assert_eq!(team(admin_kubeconfig(), &physical), "b");
    ok(k(&["label", "namespace", &name, "team-"]));
    assert_eq!(team(admin_kubeconfig(), &physical), "");
    let applied = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    team: c\n");
    ok(kubectl_stdin(kubectl_bin(), &bob, &["apply", "--server-side", "-f", "-"], Some(&applied)));
    assert_eq!(team(&bob, &name), "c");
    let read = ok(k(&["get", "namespace", &name, "-o", "json"]));
    ok(kubectl_stdin(
        kubectl_bin(),
        &bob,
        &["replace", "-f", "-"],
        Some(&read.replace(r#""team": "c""#, r#""team": "d""#)),
    ));
    assert_eq!(team(admin_kubeconfig(), &physical), "d");
    // The replace kept the tree's labels the view never shows.
    let labels = ok(kubectl(
        kubectl_bin(),
        admin_kubeconfig(),
        &["get", "namespace", &physical, "-o", "jsonpath={.metadata.labels}"],
    ));
    assert!(labels.contains("\"tree.canopy.dev/node\":\"acme-web\""), "{labels}");

    // Everything else is refused, whatever the patch type, naming what the tree allows.
    for (args, names) in [
        (vec!["label", "namespace", &name, "other=1"], "\"other\""),
        (vec!["label", "namespace", &name, "pod-security.kubernetes.io/enforce=privileged", "--overwrite"], "enforce"),
        (vec!["label", "namespace", &name, "tree.canopy.dev/node=globex", "--overwrite"], "tree.canopy.dev/node"),
        (vec!["annotate", "namespace", &name, "scheduler.alpha.kubernetes.io/node-selector=x"], "node-selector"),
        (
            vec![
                "patch",
                "namespace",
                &name,
                "--type=json",
                "-p",
                r#"[{"op":"add","path":"/metadata/finalizers","value":["example.com/hold"]}]"#,
            ],
            "only the labels",
        ),
    ] {
        let refused = fails(k(&args));
        assert!(
            refused.contains("(Forbidden)") && refused.contains(names) && !refused.contains("acme-web-"),
            "{refused}"
        );
    }
    let created = created.replace("team", "other");
    let refused = fails(kubectl_stdin(
        kubectl_bin(),
        &bob,
        &["create", "-f", "-"],
        Some(&created.replace(&name, &format!("{name}-2"))),
    ));
    assert!(refused.contains("(Forbidden)") && refused.contains("allow.namespaces.labels"), "{refused}");
    // Only those who may manage namespaces; other tenants do not even see it.
    let carol =
        fails(kubectl(kubectl_bin(), &as_user(&canopy, "carol"), &["label", "namespace", "warehouse", "team=x"]));
    assert!(carol.contains("(Forbidden)"), "{carol}");
    let dave = fails(kubectl(kubectl_bin(), &as_user(&canopy, "dave"), &["label", "namespace", &name, "team=x"]));
    assert!(dave.contains("(NotFound)") && !dave.contains("acme-"), "{dave}");
    assert_eq!(team(admin_kubeconfig(), &physical), "d");
}

#[test]
fn kubectl_waits_for_a_namespace_to_be_deleted() {
    let _tree = tree::changing();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let name = unique("waited");
    let _cleanup = NamespaceCleanup(vec![format!("acme-web-{name}")]);
    ok(kubectl(kubectl_bin(), &bob, &["create", "namespace", &name]));
    // The delete comes while kubectl is already waiting.
    let deleting = std::thread::spawn({
        let bob = bob.clone();
        let name = name.clone();
        move || {
            std::thread::sleep(Duration::from_secs(1));
            ok(kubectl(kubectl_bin(), &bob, &["delete", "namespace", &name, "--wait=false"]));
        }
    });
    let waiting = std::process::Command::new(kubectl_bin())
        .args([
            "--kubeconfig",
            bob.to_str().unwrap(),
            "wait",
            "--for=delete",
            &format!("namespace/{name}"),
            "--timeout=90s",
        ])
        .env_remove("KUBECONFIG")
        .output();
    let waited = ok(waiting.unwrap());
    deleting.join().unwrap();
    assert!(waited.contains(&format!("namespace/{name} condition met")) && !waited.contains("acme-"), "{waited}");
}
