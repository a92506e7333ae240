//! The platform team's commands against the real apiserver: `canopy who-can` (members the tree
//! lets reach a namespace, refused by the ceiling where it forbids what RBAC allows),
//! `canopy access-matrix` (a reader's read-only access; nothing for a member of no node), clear
//! errors for bad arguments, and `--log-format json` logs.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::tenants::{self, kubectl_bin};
use crate::common::*;
use serde_json::Value;

/// `canopy ARGS --config CONFIG`, as the platform team runs it.
fn canopy(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canopy")).args(args).arg("--config").arg(config).output().unwrap()
}

fn json(config: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    serde_json::from_str(&ok(canopy(config, &args))).unwrap()
}

/// `(subject, allowed, by)` of each row of a who-can answer.
fn rows(answer: &Value) -> Vec<(String, bool, String)> {
    answer["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap().to_owned();
            (field("subject"), r["allowed"].as_bool().unwrap(), field("by"))
        })
        .collect()
}

#[test]
fn who_can_lists_the_members_who_reach_the_namespace() {
    let _tree = tree::reading();
    let canopy_process = tenants::canopy();
    let config = &canopy_process.config;

    let text = ok(canopy(config, &["who-can", "create", "deployments.apps", "-n", "dev", "--view", "acme/web"]));
    assert!(
        text.starts_with("who can create deployments.apps in namespace dev (view acme/web) through Canopy:\n"),
        "{text}"
    );
    assert!(text.ends_with("allowed: alice, bob\n"), "{text}");
    for user in ["carol", "dave", "erin"] {
        assert!(!text.contains(user), "{user} listed:\n{text}");
    }
    // Bob through his own binding, alice through hers at acme; RBAC's reason names the binding
    // in the view's namespace name.
    let bob = text.lines().find(|l| l.starts_with("bob ")).unwrap();
    assert!(bob.contains("acme/web  acme/web  edit   yes"), "{bob}");
    assert!(bob.contains("RoleBinding \"canopy:edit:user:bob/dev\" of ClusterRole \"edit\""), "{bob}");
    assert!(!text.contains("acme-web-dev"), "physical names stay out of a view's answer:\n{text}");
    let alice = text.lines().find(|l| l.starts_with("alice ")).unwrap();
    assert!(alice.contains("acme      acme/web  admin  yes"), "{alice}");

    let answer = json(config, &["who-can", "create", "deployments.apps", "-n", "dev", "--view", "acme/web"]);
    assert_eq!(rows(&answer), [("alice".into(), true, "upstream".into()), ("bob".into(), true, "upstream".into())]);
    // Without a view the namespace is physical, and each member stands in its own node.
    let answer = json(config, &["who-can", "delete", "pods", "-n", "acme-web-dev"]);
    let views: Vec<(&str, &str)> = answer["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["subject"].as_str().unwrap(), r["view"].as_str().unwrap()))
        .collect();
    assert_eq!(views, [("alice", "acme"), ("bob", "acme/web")]);
    // A reader is listed and refused by upstream RBAC: the view role cannot delete.
    let answer = json(config, &["who-can", "delete", "pods", "-n", "warehouse", "--view", "acme/data"]);
    assert!(rows(&answer).contains(&("carol".into(), false, "canopy".into())), "{answer:#}");
    let answer = json(config, &["who-can", "list", "secrets", "-n", "warehouse", "--view", "acme/data"]);
    assert!(rows(&answer).contains(&("carol".into(), false, "upstream".into())), "{answer:#}");
    assert!(rows(&answer).contains(&("alice".into(), true, "upstream".into())), "{answer:#}");
}

#[test]
fn who_can_shows_the_ceiling_refusing_what_rbac_allows() {
    let _tree = tree::reading();
    let harness = Harness::shared();
    let canopy_process = tenants::canopy();
    let config = &canopy_process.config;
    // Upstream RBAC alone lets alice (admin at acme) create PodDisruptionBudgets in acme-web-dev …
    let admin = Path::new(harness.var("ADMIN_KUBECONFIG"));
    let rbac = kubectl(
        kubectl_bin(),
        admin,
        &["auth", "can-i", "create", "poddisruptionbudgets.policy", "-n", "acme-web-dev", "--as", "alice"],
    );
    assert_eq!(String::from_utf8_lossy(&rbac.stdout).trim(), "yes");

    // … but acme's ceiling has no policy group, so through Canopy nobody in acme may.
    let text = ok(canopy(config, &["who-can", "create", "poddisruptionbudgets.policy", "--view", "acme/web"]));
    assert!(text.ends_with("allowed: nobody\n"), "{text}");
    let answer = json(config, &["who-can", "create", "poddisruptionbudgets.policy", "--view", "acme/web"]);
    let subjects = answer["subjects"].as_array().unwrap();
    let namespaces: BTreeSet<&str> = subjects.iter().map(|r| r["namespace"].as_str().unwrap()).collect();
    assert!(namespaces.contains("dev") && namespaces.contains("prod"), "{namespaces:?}");
    for row in subjects {
        assert_eq!((row["allowed"].as_bool(), row["by"].as_str()), (Some(false), Some("canopy")), "{row}");
        let reason = row["reason"].as_str().unwrap();
        assert!(reason.contains("cannot create resource \"poddisruptionbudgets\" in API group \"policy\""), "{reason}");
    }
    // globex sets no ceiling: there RBAC decides, and dave may.
    let answer = json(config, &["who-can", "create", "pdb", "-n", "main", "--view", "globex"]);
    assert_eq!(rows(&answer), [("dave".into(), true, "upstream".into())]);
}

#[test]
fn can_i_who_can_and_access_matrix_name_the_objects_a_label_rule_keeps_from_allowed_writes() {
    let _tree = tree::reading();
    let canopy_process = tenants::canopy();
    let config = &canopy_process.config;
    let except = "except objects labelled platform.canopy.dev/protected=true (tree.nodes[0].deny[1]: the platform team protects it)";

    // kubectl auth can-i says yes; the review itself says for which objects not.
    let bob = tenants::as_user(&canopy_process, "bob");
    let can_i = ok(kubectl(kubectl_bin(), &bob, &["auth", "can-i", "delete", "configmap/settings", "-n", "dev"]));
    assert_eq!(can_i.trim(), "yes");
    let review = r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "dev", "verb": "delete", "resource": "configmaps", "name": "settings"}}}"#;
    let answer =
        ok(kubectl_stdin(kubectl_bin(), &bob, &["create", "--validate=false", "-f", "-", "-o", "json"], Some(review)));
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"]["allowed"], true, "{answer:#}");
    let reason = answer["status"]["reason"].as_str().unwrap();
    assert!(reason.ends_with(&format!("; Canopy: {except}")), "{reason}");

    let text = ok(canopy(config, &["who-can", "delete", "configmaps", "-n", "dev", "--view", "acme/web"]));
    let bob_row = text.lines().find(|l| l.starts_with("bob ")).unwrap();
    assert!(bob_row.contains(" yes ") && bob_row.ends_with(except), "{text}");

    let args = ["access-matrix", "--user", "bob", "-n", "dev", "--view", "acme/web", "--explain"];
    let text = ok(canopy(config, &args));
    let configmaps = text.lines().find(|l| l.starts_with("configmaps ")).unwrap();
    assert_eq!(
        configmaps.split_whitespace().collect::<Vec<_>>(),
        ["configmaps", "✔", "✔", "✔", "✔*", "✔*", "✔*", "✔*"]
    );
    let explained = text.lines().find(|l| l.starts_with("configmaps ") && l.contains(except)).unwrap();
    assert!(explained.contains("create,update,patch,delete"), "{text}");
    let matrix = json(config, &args[..7]);
    let row = matrix["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "configmaps").unwrap();
    assert_eq!(row["access"]["patch"]["except"], except, "{row:#}");
    assert!(row["access"]["get"].get("except").is_none(), "{row:#}");
}

#[test]
fn access_matrix_of_a_reader_is_read_only_and_empty_for_a_member_of_no_node() {
    let _tree = tree::reading();
    let canopy_process = tenants::canopy();
    let config = &canopy_process.config;

    let text = ok(canopy(config, &["access-matrix", "--user", "carol", "-n", "warehouse", "--view", "acme/data"]));
    assert!(
        text.starts_with("access of carol (groups system:authenticated) in namespace warehouse (view acme/data)"),
        "{text}"
    );
    let configmaps = text.lines().find(|l| l.starts_with("configmaps ")).unwrap();
    assert_eq!(configmaps.split_whitespace().collect::<Vec<_>>(), ["configmaps", "✔", "✔", "✔", "✖", "✖", "✖", "✖"]);

    let matrix = json(config, &["access-matrix", "--user", "carol", "-n", "warehouse", "--view", "acme/data"]);
    let resources = matrix["resources"].as_array().unwrap();
    let mut readable = BTreeSet::new();
    for row in resources {
        let name = row["resource"].as_str().unwrap();
        // Access and token reviews are questions, not writes: every view may ask them.
        if name.ends_with("reviews.authorization.k8s.io") || name.ends_with("reviews.authentication.k8s.io") {
            continue;
        }
        for (verb, cell) in row["access"].as_object().unwrap() {
            let allowed = cell["allowed"].as_bool().unwrap();
            if ["create", "update", "patch", "delete"].contains(&verb.as_str()) {
                assert!(!allowed, "carol may {verb} {name}: {cell}");
                assert_eq!(cell["by"], "canopy", "the ceiling refuses writes before RBAC: {name} {verb}");
            } else if allowed {
                readable.insert(name);
            }
        }
    }
    for name in ["configmaps", "pods", "deployments.apps", "jobs.batch"] {
        assert!(readable.contains(name), "carol cannot read {name}: {readable:?}");
    }
    // Secrets: within the ceiling, but the view ClusterRole does not read them.
    let secrets = resources.iter().find(|r| r["resource"] == "secrets").unwrap();
    assert_eq!(
        (secrets["access"]["get"]["allowed"].as_bool(), secrets["access"]["get"]["by"].as_str()),
        (Some(false), Some("upstream"))
    );

    // erin is a member nowhere: every cell is refused, in her home view or in any named one.
    for args in [&["-n", "acme-web-dev"][..], &["-n", "dev", "--view", "acme/web"], &[]] {
        let mut all = vec!["access-matrix", "--user", "erin"];
        all.extend(args);
        let text = ok(canopy(config, &all));
        assert!(text.contains("every request is refused: "), "{args:?}: {text}");
        let (table, _legend) = text.rsplit_once("\n✔ allowed").unwrap();
        assert!(!table.contains('✔'), "erin may do something with {args:?}:\n{text}");
        let matrix = json(config, &all);
        assert!(matrix.get("view").is_none(), "{matrix:#}");
        let cells =
            matrix["resources"].as_array().unwrap().iter().flat_map(|r| r["access"].as_object().unwrap().values());
        assert!(
            cells.clone().count() > 0 && cells.clone().all(|c| c["allowed"] == false && c["by"] == "canopy"),
            "{matrix:#}"
        );
    }
    // Nor does erin appear among who may do anything anywhere.
    let text = ok(canopy(config, &["who-can", "get", "configmaps"]));
    assert!(!text.contains("erin"), "{text}");
}

#[test]
fn bad_arguments_fail_naming_what_is_wrong() {
    let _tree = tree::reading();
    let canopy_process = tenants::canopy();
    let config = &canopy_process.config;
    let cases: [(&[&str], &str); 7] = [
        (&["who-can", "get", "gadgets"], "the server doesn't have a resource type \"gadgets\""),
        (&["who-can", "fly", "pods", "-n", "dev", "--view", "acme/web"], "pods does not support the verb \"fly\""),
        (
            &["who-can", "get", "pods", "-n", "nope", "--view", "acme/web"],
            "-n \"nope\": view acme/web has no such namespace",
        ),
        (&["who-can", "get", "pods", "--view", "acme/nope"], "--view \"acme/nope\" is not a node of the tree"),
        (
            &["who-can", "get", "pods", "-n", "kube-system"],
            "-n \"kube-system\": no node of the tree owns this namespace",
        ),
        (&["who-can", "get", "namespaces", "-n", "dev", "--view", "acme/web"], "namespaces is cluster-scoped: drop -n"),
        (
            &["access-matrix", "--user", "carol", "-n", "main", "--view", "acme/data"],
            "-n \"main\": view acme/data has no such namespace",
        ),
    ];
    for (args, message) in cases {
        let err = fails(canopy(config, args));
        assert!(err.starts_with("canopy: ") && err.contains(message), "{args:?}: {err}");
    }
    // Arguments clap refuses: a missing user, an unknown output format.
    for args in [&["access-matrix", "-n", "dev"][..], &["who-can", "get", "pods", "-o", "yaml"]] {
        let output = canopy(config, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("error: "), "{args:?}");
    }
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let harness = Harness::shared();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("canopy.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\n  adminListen: 127.0.0.1:0\n  tls:\n    generatedDir: tls\nupstream:\n  kubeconfig: {}\n",
            harness.var("CANOPY_UPSTREAM_KUBECONFIG")
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let serving = loop {
        assert!(Instant::now() < deadline, "no \"serving\" line");
        let line = lines.next().expect("canopy exited").unwrap();
        let entry: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if entry["fields"]["message"] == "serving" {
            break entry;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(serving["level"], "INFO");
    assert!(serving["fields"]["listen"].as_str().unwrap().starts_with("127.0.0.1:"), "{serving}");
    assert!(serving["timestamp"].is_string(), "{serving}");

    // A fatal error is a JSON line too, naming the file and config path.
    std::fs::write(&config, "server:\n  listen: nowhere\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["--log-format", "json", "check-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let entry: Value =
        serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("not one JSON line ({e}): {stderr}"));
    assert_eq!(entry["level"], "ERROR");
    assert!(entry["fields"]["error"].as_str().unwrap().contains("server.listen"), "{entry}");
}
