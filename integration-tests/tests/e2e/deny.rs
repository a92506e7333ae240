//! Issue 20: deny rules. The example tree keeps the Deployment `queueworker` from everyone
//! below acme, whatever their role (`tree.nodes[0].deny[0]`): every kind of write is refused
//! with a 403 naming the rule, `kubectl auth can-i` says so, and other Deployments stay theirs.

use crate::common::tenants::*;
use crate::common::*;

const WORKER: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "queueworker", "namespace": "acme-web-dev"},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "queueworker"}},
    "template": {"metadata": {"labels": {"app": "queueworker"}},
      "spec": {"containers": [{"name": "w", "image": "busybox"}]}}}}"#;

#[test]
fn a_deny_rule_keeps_one_deployment_from_every_kind_of_write() {
    let _tree = tree::reading();
    let canopy = canopy();
    ok(kubectl_stdin(kubectl_bin(), admin_kubeconfig(), &["apply", "-f", "-"], Some(WORKER)));
    let bob = as_user(&canopy, "bob");
    let rule = "denied by tree.nodes[0].deny[0]: the platform team runs the queue worker";
    let writes: [&[&str]; 7] = [
        &["scale", "deployment", "queueworker", "--replicas=2"],
        &["patch", "deployment", "queueworker", "--type=merge", "-p", r#"{"spec":{"replicas":3}}"#],
        &[
            "patch",
            "deployment",
            "queueworker",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
        ],
        &["patch", "deployment", "queueworker", "-p", r#"{"spec":{"replicas":3}}"#],
        &["label", "deployment", "queueworker", "team=mine"],
        &["set", "image", "deployment/queueworker", "w=busybox:2"],
        &["delete", "deployment", "queueworker"],
    ];
    for args in writes {
        let mut args = args.to_vec();
        args.extend(["-n", "dev"]);
        let refused = fails(kubectl(kubectl_bin(), &bob, &args));
        assert!(refused.contains("forbidden") && refused.contains(rule), "{args:?}: {refused}");
    }
    // Server-side apply of the same object in view terms.
    let applied = WORKER.replace("acme-web-dev", "dev").replace(r#""replicas": 1"#, r#""replicas": 4"#);
    let refused = fails(kubectl_stdin(
        kubectl_bin(),
        &bob,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&applied),
    ));
    assert!(refused.contains(rule), "{refused}");
    assert_eq!(
        ok(kubectl(
            kubectl_bin(),
            admin_kubeconfig(),
            &["-n", "acme-web-dev", "get", "deployment", "queueworker", "-o", "jsonpath={.spec.replicas}"]
        )),
        "1"
    );
    // can-i tells the same truth, through the same decision; reads and other Deployments stay.
    let can_i = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", "-n", "dev"];
        all.extend(args);
        String::from_utf8_lossy(&kubectl(kubectl_bin(), &bob, &all).stdout).trim().to_owned()
    };
    let answer = can_i(&["patch", "deployments/queueworker"]);
    assert!(answer.starts_with("no") && answer.contains(rule), "{answer}");
    assert_eq!(can_i(&["patch", "deployments/web"]), "yes");
    assert_eq!(can_i(&["get", "deployments/queueworker"]), "yes");
    ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "get", "deployment", "queueworker"]));
}
