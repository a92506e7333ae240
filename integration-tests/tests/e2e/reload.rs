//! Hot reload against the real apiserver: removing a member is in force for the very next request
//! (design invariant 9), whatever the reconciler has yet to clean up, and ends the member's open
//! watches and exec sessions; an invalid file is refused with its config path and the old tree
//! stays. It changes the example tree (`tree::changing`): the reconciler it runs rewrites
//! RoleBindings other tests rely on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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
    // Each is waited for until it is open, so that the reload ends it rather than refuses it.
    let listed = unique("listed");
    ok(kubectl(bin, &bob, &["-n", "dev", "create", "configmap", &listed]));
    let mut watch = spawn_kubectl(bin, &bob, &["-n", "dev", "get", "configmaps", "--watch", "-o", "name"]);
    printed(&mut watch, &format!("configmap/{listed}"));
    let mut exec =
        spawn_kubectl(bin, &bob, &["-n", "dev", "exec", &pod, "--", "sh", "-c", "echo open; exec sleep 300"]);
    printed(&mut exec, "open");
    let raw = raw_watch(&canopy, harness.token("bob"), "/api/v1/namespaces/dev/configmaps?watch=1");

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

/// Waits (at most 30 s) until `child` prints `line`, which shows its stream is open; the rest of
/// its output is read and dropped, so it never blocks on a full pipe.
fn printed(child: &mut Child, line: &str) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let seen = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(30)).ok()).any(|l| l == line);
    assert!(seen, "never printed {line}");
}

/// A watch of `path` as the holder of `token`, once it is open (its headers are in), read in the
/// background until it ends (at most 60 s); the thread returns the events.
fn raw_watch(canopy: &Canopy, token: &str, path: &str) -> std::thread::JoinHandle<String> {
    let (http, url, token) = (canopy.http(), format!("{}{path}", canopy.url), token.to_owned());
    let (open, opened) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let read = async {
                let response = http.get(url).bearer_auth(token).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let _ = open.send(());
                response.text().await.unwrap()
            };
            tokio::time::timeout(Duration::from_secs(60), read).await.expect("the watch did not end")
        })
    });
    opened.recv_timeout(Duration::from_secs(30)).expect("the watch never opened");
    reader
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
