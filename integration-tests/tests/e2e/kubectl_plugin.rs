//! `kubectl canopy` (issue 20): the `canopy` binary found by kubectl as `kubectl-canopy`, once
//! linked by hand on `PATH` and once installed by krew from the repository's manifest
//! (`docs/krew/`), answers every platform command as `canopy` itself does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::tenants::{self, kubectl_bin};
use crate::common::*;

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> OsString {
    let mut paths = vec![dir.to_owned()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).unwrap()
}

/// `kubectl ARGS` with `path` as `PATH`.
fn kubectl_with(path: &OsString, config: &Path, args: &[&str]) -> Output {
    Command::new(kubectl_bin()).args(args).env("PATH", path).env("CANOPY_CONFIG", config).output().unwrap()
}

/// `canopy ARGS` as the platform team runs it outside kubectl.
fn canopy_itself(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canopy")).args(args).env("CANOPY_CONFIG", config).output().unwrap()
}

/// The commands the plugin offers, each as kubectl passes them on.
fn commands(config: &Path) -> Vec<Vec<String>> {
    let config = config.to_str().unwrap().to_owned();
    [
        vec!["tree", &config],
        vec!["check-config", &config],
        vec!["who-can", "create", "deployments.apps", "-n", "dev", "--view", "acme/web", "-o", "json"],
        vec!["access-matrix", "--user", "bob", "-n", "dev", "--view", "acme/web", "-o", "json"],
        vec!["kubeconfig", "--user", "bob", "--token", "t0ken", "--view", "acme/web"],
    ]
    .into_iter()
    .map(|command| command.into_iter().map(str::to_owned).collect())
    .collect()
}

/// An answer without the upstream reasons of JSON answers, which name whichever of several
/// RoleBindings allowing the same (other tests add some) the apiserver met first.
fn decisions(answer: String) -> String {
    fn without_reasons(value: &mut Value) {
        match value {
            Value::Object(fields) => {
                fields.remove("reason");
                fields.values_mut().for_each(without_reasons);
            }
            Value::Array(items) => items.iter_mut().for_each(without_reasons),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(&answer) {
        Ok(mut value) => {
            without_reasons(&mut value);
            value.to_string()
        }
        Err(_) => answer,
    }
}

/// Runs every plugin command through kubectl with `path` and checks it answers as `canopy` does.
fn answers_as_canopy(path: &OsString, config: &Path) {
    for command in commands(config) {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let through_kubectl = decisions(ok(kubectl_with(path, config, &[&["canopy"], args.as_slice()].concat())));
        assert_eq!(through_kubectl, decisions(ok(canopy_itself(config, &args))), "kubectl canopy {command:?}");
    }
}

#[test]
fn kubectl_runs_canopy_as_its_plugin() {
    let _tree = tree::reading();
    let canopy = tenants::canopy();
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_canopy"), bin.path().join("kubectl-canopy")).unwrap();
    let path = path_with(bin.path());

    let listed = ok(kubectl_with(&path, &canopy.config, &["plugin", "list", "--name-only"]));
    assert!(listed.lines().any(|line| line == "kubectl-canopy"), "{listed}");
    answers_as_canopy(&path, &canopy.config);

    let help = ok(kubectl_with(&path, &canopy.config, &["canopy", "--help"]));
    assert!(help.contains("Usage: kubectl canopy [OPTIONS] <COMMAND>"), "{help}");
    for command in ["tree", "who-can", "access-matrix", "kubeconfig", "check-config"] {
        assert!(help.contains(&format!("  {command} ")), "{command} missing from {help}");
    }
    assert!(!help.contains("  serve "), "{help}");
    let help = ok(canopy_itself(&canopy.config, &["--help"]));
    assert!(help.contains("Usage: canopy [OPTIONS] <COMMAND>") && help.contains("  serve "), "{help}");
}

#[test]
fn krew_installs_the_plugin_from_the_repository_s_manifest() {
    let _tree = tree::reading();
    let canopy = tenants::canopy();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let packaged = ok(Command::new(repo.join("docs/krew/package.sh")).output().unwrap());
    let [manifest, archive]: [PathBuf; 2] = packaged.lines().map(PathBuf::from).collect::<Vec<_>>().try_into().unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(!text.contains('@'), "a placeholder is left in {text}");

    let krew_root = tempfile::tempdir().unwrap();
    let krew = Path::new(Harness::shared().var("KUBECTL")).with_file_name("krew");
    let installed = Command::new(krew)
        .args(["install", "--manifest"])
        .arg(&manifest)
        .arg("--archive")
        .arg(&archive)
        .env("KREW_ROOT", krew_root.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&installed.stderr).into_owned();
    ok(installed);
    assert!(said.contains("Installed plugin: canopy"), "{said}");
    answers_as_canopy(&path_with(&krew_root.path().join("bin")), &canopy.config);
}
