//! Issue 20: deny rules. The example tree keeps the Deployment `queueworker` from everyone
//! below acme, whatever their role (`tree.nodes[0].deny[0]`): every kind of write is refused
//! with a 403 naming the rule, `kubectl auth can-i` says so, and other Deployments stay theirs.
//! It keeps whatever the platform labels protected the same way (`tree.nodes[0].deny[1]`), judged
//! on the object's labels before and after each write, so relabelling neither lifts nor dodges it.

use std::time::Duration;

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
    // So does the list (a SelfSubjectRulesReview): what RBAC's terms cannot say, a warning says.
    let listed = kubectl(kubectl_bin(), &bob, &["auth", "can-i", "--list", "-n", "dev"]);
    let (rules, warning) = (String::from_utf8_lossy(&listed.stdout), String::from_utf8_lossy(&listed.stderr));
    assert!(rules.lines().any(|l| l.starts_with("deployments.apps ") && l.contains("patch")), "{rules}");
    assert!(warning.contains("the list may be incomplete"), "{warning}");
    assert!(warning.contains("deployments.apps") && warning.contains("except the objects a rule names (denied by tree.nodes[0].deny[0]: the platform team runs the queue worker)"), "{warning}");
    assert!(warning.contains("except objects labelled platform.canopy.dev/protected=true"), "{warning}");
}

const PROTECTED: &str = "platform.canopy.dev/protected";
const LABEL_RULE: &str = "denied by tree.nodes[0].deny[1] (objects labelled platform.canopy.dev/protected=true): the platform team protects it";

/// Creates ConfigMap `name` in acme-web-dev as the admin, with `labels` (`k=v` pairs).
fn admin_configmap(name: &str, labels: &[&str]) {
    let bin = kubectl_bin();
    ok(kubectl(bin, admin_kubeconfig(), &["-n", "acme-web-dev", "create", "configmap", name, "--from-literal=k=v"]));
    if !labels.is_empty() {
        let mut args = vec!["-n", "acme-web-dev", "label", "configmap", name];
        args.extend(labels);
        ok(kubectl(bin, admin_kubeconfig(), &args));
    }
}

/// `labels` and `data.k` of ConfigMap `name` in acme-web-dev, as the admin reads it.
fn admin_reads(name: &str) -> String {
    ok(kubectl(
        kubectl_bin(),
        admin_kubeconfig(),
        &["-n", "acme-web-dev", "get", "configmap", name, "-o", "jsonpath={.metadata.labels} {.data.k}"],
    ))
}

#[test]
fn a_deny_rule_by_label_keeps_protected_objects_from_every_kind_of_write_and_relabelling() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let bin = kubectl_bin();
    let (guarded, free, batch) = (unique("guarded"), unique("free"), unique("batch"));
    let protected = format!("{PROTECTED}=true");
    admin_configmap(&guarded, &[&protected]);
    admin_configmap(&free, &[]);
    let before = admin_reads(&guarded);
    let refused = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["-n", "dev"];
        all.extend(args);
        let answer = fails(kubectl_stdin(bin, &bob, &all, stdin));
        assert!(answer.contains("forbidden") && answer.contains(LABEL_RULE), "{args:?}: {answer}");
    };
    // Every kind of write to the protected object, lifting the label included.
    let patch = r#"{"data":{"k":"changed"}}"#;
    refused(&["patch", "configmap", &guarded, "--type=merge", "-p", patch], None);
    refused(&["patch", "configmap", &guarded, "-p", patch], None);
    refused(
        &["patch", "configmap", &guarded, "--type=json", "-p", r#"[{"op":"replace","path":"/data/k","value":"x"}]"#],
        None,
    );
    refused(&["label", "configmap", &guarded, &format!("{PROTECTED}-")], None);
    refused(&["label", "configmap", &guarded, "--overwrite", &format!("{PROTECTED}=false")], None);
    let object = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{guarded}","namespace":"dev"}},"data":{{"k":"replaced"}}}}"#
    );
    refused(&["replace", "-f", "-"], Some(&object));
    refused(&["apply", "--server-side", "--force-conflicts", "-f", "-"], Some(&object));
    refused(&["delete", "configmap", &guarded], None);
    // Nor can a write make an object protected (it would be one the rule chooses), nor create one.
    refused(&["label", "configmap", &free, &protected], None);
    let labelled = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{batch}","labels":{{"{PROTECTED}":"true"}}}}}}"#
    );
    refused(&["create", "-f", "-"], Some(&labelled));
    // A protected Deployment's scale is read through its own labels.
    let deployment = WORKER.replace("queueworker", &guarded).replace(
        r#""namespace": "acme-web-dev"}"#,
        r#""namespace": "acme-web-dev", "labels": {"platform.canopy.dev/protected": "true"}}"#,
    );
    ok(kubectl_stdin(bin, admin_kubeconfig(), &["apply", "-f", "-"], Some(&deployment)));
    refused(&["scale", "deployment", &guarded, "--replicas=2"], None);
    ok(kubectl(bin, admin_kubeconfig(), &["-n", "acme-web-dev", "delete", "deployment", &guarded]));
    // An unprotected one scales, its scale judged through its labels and committed pinned.
    let unprotected = WORKER.replace("queueworker", &free);
    ok(kubectl_stdin(bin, admin_kubeconfig(), &["apply", "-f", "-"], Some(&unprotected)));
    ok(kubectl(bin, &bob, &["-n", "dev", "scale", "deployment", &free, "--replicas=2"]));
    let replicas = ["-n", "acme-web-dev", "get", "deployment", &free, "-o", "jsonpath={.spec.replicas}"];
    assert_eq!(ok(kubectl(bin, admin_kubeconfig(), &replicas)).trim(), "2");
    ok(kubectl(bin, admin_kubeconfig(), &["-n", "acme-web-dev", "delete", "deployment", &free]));
    // A delete of a collection reaches protected objects unless its selector excludes them
    // (`kubectl delete --all` deletes one by one; `--raw` sends the deletecollection itself).
    refused(&["delete", "--raw", "/api/v1/namespaces/dev/configmaps"], None);
    assert_eq!(admin_reads(&guarded), before, "nothing changed upstream");
    assert!(!admin_reads(&free).contains(PROTECTED), "the free one stayed unlabelled");
    // What the rule does not choose stays the tenant's: reads, writes of others, a narrowed delete.
    ok(kubectl(bin, &bob, &["-n", "dev", "get", "configmap", &guarded]));
    ok(kubectl(bin, &bob, &["-n", "dev", "patch", "configmap", &free, "--type=merge", "-p", patch]));
    ok(kubectl(bin, &bob, &["-n", "dev", "create", "configmap", &batch, "--from-literal=k=v"]));
    ok(kubectl(bin, &bob, &["-n", "dev", "label", "configmap", &batch, "e2e-batch=labels"]));
    let narrowed = "/api/v1/namespaces/dev/configmaps?labelSelector=e2e-batch%3Dlabels%2Cplatform.canopy.dev%2Fprotected%21%3Dtrue";
    ok(kubectl(bin, &bob, &["delete", "--raw", narrowed]));
    assert!(!exists_upstream("acme-web-dev", "configmap", &batch));
    // Once the platform lifts the label, the object is the tenant's again.
    ok(kubectl(
        bin,
        admin_kubeconfig(),
        &["-n", "acme-web-dev", "label", "configmap", &guarded, &format!("{PROTECTED}-")],
    ));
    ok(kubectl(bin, &bob, &["-n", "dev", "delete", "configmap", &guarded, &free]));
}

#[test]
fn a_deny_rule_by_label_on_reads_hides_protected_objects_from_gets_and_unnarrowed_lists() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let bin = kubectl_bin();
    let (guarded, free) = (unique("guarded"), unique("free"));
    admin_configmap(&guarded, &[&format!("{PROTECTED}=true")]);
    admin_configmap(&free, &[]);
    // The same rule, reading too.
    let original = std::fs::read_to_string(&canopy.config).unwrap();
    let reading = original.replace(
        "resources: [configmaps, deployments]\n          verbs: [create, update, patch, delete]",
        "resources: [configmaps, deployments]\n          verbs: [get, create, update, patch, delete]",
    );
    assert_ne!(reading, original, "the example's label rule is where this test expects it");
    std::fs::write(&canopy.config, &reading).unwrap();
    eventually(Duration::from_secs(20), "the reload to refuse reads", || {
        !kubectl(bin, &bob, &["-n", "dev", "get", "configmap", &guarded]).status.success()
    });
    for output in ["name", "json", "yaml", "wide"] {
        let answer = fails(kubectl(bin, &bob, &["-n", "dev", "get", "configmap", &guarded, "-o", output]));
        assert!(answer.contains(LABEL_RULE), "-o {output}: {answer}");
    }
    let answer = fails(kubectl(bin, &bob, &["-n", "dev", "get", "configmaps"]));
    assert!(answer.contains(LABEL_RULE), "{answer}");
    let narrowed = format!("{PROTECTED}!=true");
    let listed = ok(kubectl(bin, &bob, &["-n", "dev", "get", "configmaps", "-l", &narrowed, "-o", "name"]));
    assert!(listed.contains(&free) && !listed.contains(&guarded), "{listed}");
    ok(kubectl(bin, &bob, &["-n", "dev", "get", "configmap", &free, "-o", "json"]));
    std::fs::write(&canopy.config, &original).unwrap();
    let _ = kubectl(bin, admin_kubeconfig(), &["-n", "acme-web-dev", "delete", "configmap", &guarded, &free]);
}

#[test]
fn a_deny_rule_by_label_keeps_protected_pods_from_eviction_pinned_to_the_pod_judged() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let bin = kubectl_bin();
    // This Canopy's acme may evict, and its label rule covers evictions.
    let original = std::fs::read_to_string(&canopy.config).unwrap();
    let evicting = original
        .replacen(
            "subresources: [exec, attach, portforward, log]",
            "subresources: [exec, attach, portforward, log, eviction]",
            1,
        )
        .replace("resources: [configmaps, deployments]\n", "resources: [configmaps, deployments, pods/eviction]\n");
    assert_eq!(evicting.matches("eviction").count(), 2, "the example is where this test expects it");
    std::fs::write(&canopy.config, &evicting).unwrap();
    let (guarded, free) = (unique("guarded"), unique("free"));
    for (name, labels) in [(&guarded, format!(r#"{{"{PROTECTED}":"true"}}"#)), (&free, "{}".to_owned())] {
        let pod = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{labels}}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
        );
        ok(kubectl_stdin(bin, admin_kubeconfig(), &["-n", "acme-web-dev", "create", "-f", "-"], Some(&pod)));
    }
    let evict = |name: &str| {
        let eviction = format!(r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{name}"}}}}"#);
        let path = format!("/api/v1/namespaces/dev/pods/{name}/eviction");
        kubectl_stdin(bin, &bob, &["create", "--raw", &path, "-f", "-"], Some(&eviction))
    };
    eventually(Duration::from_secs(20), "the reload to let bob evict", || evict(&free).status.success());
    assert!(!exists_upstream("acme-web-dev", "pod", &free), "the free pod was evicted");
    let refused = fails(evict(&guarded));
    assert!(refused.contains(LABEL_RULE), "{refused}");
    assert!(exists_upstream("acme-web-dev", "pod", &guarded), "the protected pod stays");
    std::fs::write(&canopy.config, &original).unwrap();
    let _ = kubectl(bin, admin_kubeconfig(), &["-n", "acme-web-dev", "delete", "pod", &guarded, "--wait=false"]);
}
