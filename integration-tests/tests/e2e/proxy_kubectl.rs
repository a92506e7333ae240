//! The real kubectl (the harness-built one and the machine's own) through a transparent Canopy:
//! CRUD, every patch type, server-side apply, watches, discovery, OpenAPI and `auth can-i`.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;

#[test]
fn crud_and_every_patch_type() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let kubeconfig = canopy.kubeconfig("admin", harness.token("admin"));
    for bin in harness.kubectls() {
        let ns = unique("crud");
        let k = |args: &[&str]| kubectl(&bin, &kubeconfig, args);
        ok(k(&["create", "namespace", &ns]));
        ok(k(&["-n", &ns, "create", "configmap", "cm", "--from-literal=a=1"]));
        assert_eq!(ok(k(&["-n", &ns, "get", "configmap", "cm", "-o", "jsonpath={.data.a}"])), "1");
        assert!(ok(k(&["-n", &ns, "get", "configmaps", "-o", "name"])).contains("configmap/cm"));

        let applied = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: {ns}\ndata:\n  x: \"1\"\n"
        );
        ok(kubectl_stdin(&bin, &kubeconfig, &["apply", "-f", "-"], Some(&applied)));
        ok(kubectl_stdin(&bin, &kubeconfig, &["apply", "-f", "-"], Some(&applied.replace("x: \"1\"", "x: \"2\""))));
        assert_eq!(ok(k(&["-n", &ns, "get", "cm", "applied", "-o", "jsonpath={.data.x}"])), "2");

        ok(k(&["-n", &ns, "patch", "cm", "cm", "-p", r#"{"data":{"b":"2"}}"#]));
        ok(k(&["-n", &ns, "patch", "cm", "cm", "--type", "merge", "-p", r#"{"data":{"c":"3"}}"#]));
        ok(k(&[
            "-n",
            &ns,
            "patch",
            "cm",
            "cm",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/data/d","value":"4"}]"#,
        ]));
        let ssa =
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: {ns}\ndata:\n  e: \"5\"\n");
        ok(kubectl_stdin(
            &bin,
            &kubeconfig,
            &["apply", "--server-side", "--field-manager", "e2e", "-f", "-"],
            Some(&ssa),
        ));
        let data = ok(k(&["-n", &ns, "get", "cm", "cm", "-o", "jsonpath={.data}"]));
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(data, serde_json::json!({"a":"1","b":"2","c":"3","d":"4","e":"5"}));

        ok(k(&["-n", &ns, "delete", "cm", "cm"]));
        let err = fails(k(&["-n", &ns, "get", "cm", "cm"]));
        assert!(err.contains("(NotFound)") && err.contains("\"cm\" not found"), "{err}");
        ok(k(&["delete", "namespace", &ns, "--wait=false"]));
    }
}

#[test]
fn get_watch_streams_events_as_they_happen() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let kubeconfig = canopy.kubeconfig("admin", harness.token("admin"));
    let ns = admin_namespace(harness, "watch");
    for bin in harness.kubectls() {
        // Listed before the watch: once kubectl prints it, the list is done and what follows is
        // the watch's.
        let listed = unique("listed");
        ok(kubectl(&bin, &kubeconfig, &["-n", &ns, "create", "configmap", &listed]));
        let mut watch = Command::new(&bin)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["-n", &ns, "get", "configmaps", "-w", "-o", "name"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = watch.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(15)).ok());
        let first = format!("configmap/{listed}");
        assert!(lines.any(|line| line == first), "the watch never listed {first}");
        let name = unique("w");
        ok(kubectl(&bin, &kubeconfig, &["-n", &ns, "create", "configmap", &name]));
        let wanted = format!("configmap/{name}");
        let seen = lines.any(|line| line == wanted);
        let _ = watch.kill();
        let _ = watch.wait();
        assert!(seen, "the watch never showed {wanted}");
    }
}

#[test]
fn discovery_explain_openapi_and_can_i() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let admin = canopy.kubeconfig("admin", harness.token("admin"));
    let nobody = canopy.kubeconfig("nobody", harness.token("nobody"));
    for bin in harness.kubectls() {
        let resources = ok(kubectl(&bin, &admin, &["api-resources"]));
        assert!(resources.contains("configmaps") && resources.contains("deployments"), "{resources}");
        let explained = ok(kubectl(&bin, &admin, &["explain", "pods.spec.containers"]));
        assert!(explained.contains("FIELDS"), "{explained}");
        let openapi = ok(kubectl(&bin, &admin, &["get", "--raw", "/openapi/v3"]));
        assert!(openapi.contains("\"paths\""), "{openapi}");
        assert_eq!(ok(kubectl(&bin, &admin, &["auth", "can-i", "create", "pods"])).trim(), "yes");
        let no = kubectl(&bin, &nobody, &["auth", "can-i", "create", "pods"]);
        assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no");
    }
}

#[test]
fn a_user_without_rbac_gets_the_apiservers_own_403() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let nobody = canopy.kubeconfig("nobody", harness.token("nobody"));
    for bin in harness.kubectls() {
        let err = fails(kubectl(&bin, &nobody, &["-n", "default", "get", "pods"]));
        // The apiserver names the impersonated caller, not Canopy's own identity.
        assert!(err.contains("(Forbidden)") && err.contains("User \"nobody\" cannot list resource \"pods\""), "{err}");
    }
}

#[test]
fn the_apiserver_sees_the_caller_with_all_its_groups() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let admin = canopy.kubeconfig("admin", harness.token("admin"));
    for bin in harness.kubectls() {
        let review: serde_json::Value =
            serde_json::from_str(&ok(kubectl(&bin, &admin, &["auth", "whoami", "-o", "json"]))).expect("json");
        let user = &review["status"]["userInfo"];
        assert_eq!((user["username"].as_str(), user["uid"].as_str()), (Some("admin"), Some("uid-1-admin")), "{review}");
        // Canopy leaves `system:authenticated` to the apiserver, which adds it itself.
        let mut groups: Vec<_> = user["groups"].as_array().expect("groups").iter().filter_map(|g| g.as_str()).collect();
        groups.sort_unstable();
        assert_eq!(groups, ["system:authenticated", "system:masters"], "{review}");
    }
}
