//! The configuration commands as an operator runs them: `canopy check-config` on the example and
//! on broken files (the error names the file and the config path), `canopy schema` against the
//! checked-in schema and `canopy schema --markdown` against the checked-in reference, and
//! `canopy tree --live` against the real apiserver — declared namespaces present or missing, and
//! a namespace labelled into acme's subtree listed under acme.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::tenants::{self, kubectl_bin};
use crate::common::*;

const EXAMPLE: &str = "proxy-config/example.yaml";

/// `canopy ARGS` from the repository root, as the README runs it.
fn canopy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canopy")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap()
}

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE)).unwrap()
}

/// `text` with `from` replaced by `to`, which must occur.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "example.yaml no longer contains {from:?}");
    text.replacen(from, to, 1)
}

/// Writes `text` as `name` in `dir`.
fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_accepts_the_example() {
    let out = ok(canopy(&["check-config", EXAMPLE]));
    assert!(out.starts_with(&format!("{EXAMPLE}: ok (")), "{out}");
}

#[test]
fn check_config_names_file_and_config_path_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // A shape error: an unknown key.
        (edit(&example(), "shutdownGraceSeconds:", "shutdownGraceSecs:"), "server.shutdownGraceSecs"),
        // A tree error: carol's node grants a subresource acme does not allow.
        (edit(&example(), "subresources: [log]", "subresources: [log, proxy]"), "tree.nodes[0].children[1].allow"),
        // A namespaced resource among the cluster-scoped ones would read it cluster-wide.
        (
            edit(&example(), "- {resources: [nodes]}", "- {apiGroups: [\"*\"], resources: [nodes, configmaps]}"),
            "tree.nodes[1].allow.clusterResources[0].resources[1]",
        ),
        // A child may not change a namespace label its ancestor sets.
        (
            edit(
                &example(),
                "          namespaces: [dev, prod]",
                "          namespaces: [dev, prod]\n          namespaceLabels: {pod-security.kubernetes.io/enforce: privileged}",
            ),
            "tree.nodes[0].children[0].namespaceLabels.pod-security.kubernetes.io/enforce",
        ),
    ];
    for (i, (text, at)) in cases.iter().enumerate() {
        let file = write(&dir, &format!("broken-{i}.yaml"), text);
        let err = fails(canopy(&["check-config", file.to_str().unwrap()]));
        assert!(err.contains(&format!("{}: {at}", file.display())), "expected {at} in: {err}");
    }
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let printed = ok(canopy(&["schema"]));
    let checked_in =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy-config/canopy.schema.json")).unwrap();
    assert!(
        printed == checked_in,
        "proxy-config/canopy.schema.json is stale; run `cargo run --release -- schema > proxy-config/canopy.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert!(example().starts_with("# yaml-language-server: $schema=canopy.schema.json\n"));
}

#[test]
fn schema_markdown_prints_the_checked_in_reference() {
    let printed = ok(canopy(&["schema", "--markdown"]));
    let checked_in =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config-reference.md")).unwrap();
    assert!(
        printed == checked_in,
        "docs/config-reference.md is stale; run `cargo run --release -- schema --markdown > docs/config-reference.md`"
    );
    assert!(printed.contains("| `tree.controllers[].allow.secretTypes` |"), "{printed}");
}

#[test]
fn tree_live_without_a_reachable_upstream_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        edit(&example(), "kubeconfig: ../integration-tests/.run/canopy.kubeconfig", "kubeconfig: missing.kubeconfig");
    let file = write(&dir, "canopy.yaml", &text);
    let err = fails(canopy(&["tree", file.to_str().unwrap(), "--live"]));
    assert!(err.contains("upstream.kubeconfig"), "{err}");
}

/// The lines of one node's block in `canopy tree` output: from its own line to its first child.
fn block<'a>(text: &'a str, node_line: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(node_line));
    let head = lines.next().unwrap_or_else(|| panic!("no {node_line:?} in:\n{text}"));
    std::iter::once(head).chain(lines.take_while(|l| !l.contains("── "))).collect()
}

#[test]
fn tree_live_shows_declared_namespaces_and_undeclared_ones_under_their_owner() {
    let _tree = tree::changing();
    let harness = Harness::shared();
    // A Canopy serving the example tree, once its reconciler has created the declared namespaces.
    let _canopy = tenants::canopy();
    // A namespace carrying acme's labels that the config does not declare, as a tenant's would.
    let undeclared = unique("acme-cli");
    let admin = Path::new(harness.var("ADMIN_KUBECONFIG"));
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {undeclared}\n  labels:\n    acme.tree.canopy.dev/depth: \"0\"\n    tree.canopy.dev/node: acme\n"
    );
    ok(kubectl_stdin(kubectl_bin(), admin, &["create", "-f", "-"], Some(&manifest)));

    // The example itself, pointed at this harness, plus one namespace nobody has created.
    let missing = unique("never");
    let dir = tempfile::tempdir().unwrap();
    let text = edit(
        &example(),
        "kubeconfig: ../integration-tests/.run/canopy.kubeconfig",
        &format!("kubeconfig: {}", harness.var("CANOPY_UPSTREAM_KUBECONFIG")),
    );
    let text = edit(&text, "namespaces: [main]", &format!("namespaces: [main, {missing}]"));
    let file = write(&dir, "example.yaml", &text);
    let output = canopy(&["tree", file.to_str().unwrap(), "--live"]);
    // Waited for, so that the next test's views list acme's namespaces exactly.
    ok(kubectl(kubectl_bin(), admin, &["delete", "namespace", &undeclared, "--timeout=60s"]));
    let out = ok(output);

    assert!(out.contains("namespaces: acme-web-dev [present], acme-web-prod [present]"), "{out}");
    assert!(out.contains("namespaces: acme-data-warehouse [present]"), "{out}");
    assert!(out.contains(&format!("namespaces: globex-main [present], globex-{missing} [missing]")), "{out}");
    let acme = block(&out, "acme  (prefix");
    assert!(
        acme.iter().any(|l| l.contains("undeclared: ") && l.split([' ', ',']).any(|w| w == undeclared)),
        "{undeclared} not listed as undeclared under acme:\n{out}"
    );
    assert!(!block(&out, "globex  (prefix").iter().any(|l| l.contains(&undeclared)), "{out}");
    assert!(out.lines().last().is_some_and(|l| l.starts_with("live: 4 of 5 declared namespaces exist")), "{out}");
}
