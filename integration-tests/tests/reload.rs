//! Hot reload against the real apiserver: removing a member is in force for the very next request
//! (design invariant 9), whatever the reconciler has yet to clean up; an invalid file is refused
//! with its config path and the old tree stays. Its own binary, because the reconciler it runs
//! rewrites RoleBindings other tests rely on.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn reload_revokes_at_once_and_a_bad_file_keeps_the_old_tree() {
    let harness = Harness::shared();
    let canopy = Canopy::start_with(harness, Options { example_tree: true, ..Default::default() });
    let bin = &harness.kubectls()[0];
    let bob = canopy.kubeconfig("bob", harness.token("bob"));
    let alice = canopy.kubeconfig("alice", harness.token("alice"));
    eventually(Duration::from_secs(60), "bob's access", || {
        kubectl(bin, &bob, &["-n", "dev", "get", "configmaps"]).status.success()
    });
    let original = std::fs::read_to_string(&canopy.config).unwrap();

    let without_bob = original.replace("{kind: User, name: bob, role: edit}", "{kind: User, name: robert, role: edit}");
    assert_ne!(without_bob, original);
    std::fs::write(&canopy.config, &without_bob).unwrap();
    eventually(Duration::from_secs(5), "bob's revocation", || {
        let err = String::from_utf8_lossy(&kubectl(bin, &bob, &["-n", "dev", "get", "configmaps"]).stderr).into_owned();
        err.contains("(Forbidden)") && err.contains("not a member")
    });

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
