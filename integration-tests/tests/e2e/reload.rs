//! Hot reload against the real apiserver: removing a member is in force for the very next request
//! (design invariant 9), whatever the reconciler has yet to clean up, and ends the member's open
//! watches and exec sessions; an invalid file is refused with its config path and the old tree
//! stays. It changes the example tree (`tree::changing`): the reconciler it runs rewrites
//! RoleBindings other tests rely on.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn reload_revokes_at_once_and_a_bad_file_keeps_the_old_tree() {
    let _tree = tree::changing();
    let harness = Harness::shared();
    let canopy = Canopy::start_with(harness, Options { example_tree: true, ..Default::default() });
    let bin = &harness.kubectls()[0];
    let bob = canopy.kubeconfig("bob", harness.token("bob"));
    let alice = canopy.kubeconfig("alice", harness.token("alice"));
    eventually(Duration::from_secs(60), "bob's access", || {
        kubectl(bin, &bob, &["-n", "dev", "get", "configmaps"]).status.success()
    });
    let original = std::fs::read_to_string(&canopy.config).unwrap();
    // Streams bob opens before the reload: a watch and an exec session in a running pod.
    let pod = unique("reload");
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{pod}"}},
            "spec": {{"containers": [{{"name": "c", "image": "busybox"}}]}}}}"#
    );
    ok(kubectl_stdin(bin, &bob, &["-n", "dev", "apply", "-f", "-"], Some(&manifest)));
    eventually(Duration::from_secs(30), "bob's pod to run", || {
        ok(kubectl(bin, &bob, &["-n", "dev", "get", "pod", &pod, "-o", "jsonpath={.status.phase}"])) == "Running"
    });
    let watch = spawn_kubectl(bin, &bob, &["-n", "dev", "get", "configmaps", "--watch", "-o", "name"]);
    let exec = spawn_kubectl(bin, &bob, &["-n", "dev", "exec", &pod, "--", "sleep", "300"]);
    let raw = raw_watch(&canopy, harness.token("bob"), "/api/v1/namespaces/dev/configmaps?watch=1");
    std::thread::sleep(Duration::from_secs(2));

    let without_bob = original.replace("{kind: User, name: bob, role: edit}", "{kind: User, name: robert, role: edit}");
    assert_ne!(without_bob, original);
    std::fs::write(&canopy.config, &without_bob).unwrap();
    eventually(Duration::from_secs(5), "bob's revocation", || {
        let err = String::from_utf8_lossy(&kubectl(bin, &bob, &["-n", "dev", "get", "configmaps"]).stderr).into_owned();
        err.contains("(Forbidden)") && err.contains("not a member")
    });
    ended(watch, "bob's kubectl watch");
    ended(exec, "bob's exec session");
    let events = raw.join().unwrap();
    let last = events.lines().last().unwrap_or_default();
    assert!(
        last.contains(r#""type":"ERROR""#) && last.contains(r#""code":403"#) && last.contains("access revoked"),
        "the watch ends saying why: {last}"
    );

    std::fs::write(&canopy.config, without_bob.replace("- name: acme", "- name: Acme")).unwrap();
    eventually(Duration::from_secs(5), "the refusal in the log", || {
        canopy.log().contains("configuration reload refused")
    });
    // The refusal names the config path at fault.
    assert!(canopy.log().contains("tree.nodes[0].name"), "{}", canopy.log());
    // The previous tree (without bob) is still the one in force.
    assert!(!kubectl(bin, &bob, &["-n", "dev", "get", "configmaps"]).status.success());
    ok(kubectl(bin, &alice, &["-n", "web-dev", "get", "configmaps"]));

    std::fs::write(&canopy.config, &original).unwrap();
    eventually(Duration::from_secs(30), "bob's access to come back", || {
        kubectl(bin, &bob, &["-n", "dev", "get", "configmaps"]).status.success()
    });
}

/// `kubectl ARGS` running in the background.
fn spawn_kubectl(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Child {
    Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A watch of `path` as the holder of `token`, read in the background until it ends (at most
/// 60 s); the thread returns the events.
fn raw_watch(canopy: &Canopy, token: &str, path: &str) -> std::thread::JoinHandle<String> {
    let (http, url, token) = (canopy.http(), format!("{}{path}", canopy.url), token.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let read = async { http.get(url).bearer_auth(token).send().await.unwrap().text().await.unwrap() };
            tokio::time::timeout(Duration::from_secs(60), read).await.expect("the watch did not end")
        })
    })
}

/// Waits (at most 10 s) for `child` to end by itself; returns what it printed.
fn ended(mut child: Child, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} is still open after the reload revoked it");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
