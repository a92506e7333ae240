//! Helm as a real client through Canopy (issue 5): a tenant installs, upgrades, lists and
//! uninstalls a small chart in its own namespace, and is refused outside its view. Helm keeps
//! releases in Secrets of type `helm.sh/release.v1`, which the example tree allows. The helm
//! binary is the one `charts/test.sh` builds (CI runs it first), or `$HELM`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::tenants::*;
use crate::common::*;

fn helm_binary() -> PathBuf {
    if let Ok(helm) = std::env::var("HELM") {
        return PathBuf::from(helm);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/helm");
    std::fs::read_dir(&built)
        .ok()
        .and_then(|versions| versions.filter_map(Result::ok).map(|v| v.path().join("helm")).find(|h| h.exists()))
        .unwrap_or_else(|| panic!("no helm in {} and no $HELM: run charts/test.sh first", built.display()))
}

/// Runs helm with `kubeconfig` and a private HOME (helm's caches and config).
fn helm(home: &Path, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new(helm_binary())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn tiny_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("tiny");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: tiny\nversion: 0.1.0\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  v: {{ .Values.v | default \"one\" | quote }}\n",
    )
    .unwrap();
    chart
}

#[test]
fn a_tenant_installs_and_upgrades_a_chart_in_its_own_namespace_only() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let dir = tempfile::tempdir().unwrap();
    let chart = tiny_chart(dir.path());
    let chart = chart.to_str().unwrap();
    let release = unique("rel");
    ok(helm(dir.path(), &bob, &["install", &release, chart, "-n", "dev", "--wait", "--timeout", "60s"]));
    ok(helm(dir.path(), &bob, &["upgrade", &release, chart, "-n", "dev", "--set", "v=two"]));
    let value = ok(kubectl(
        kubectl_bin(),
        &bob,
        &["-n", "dev", "get", "configmap", &format!("{release}-cm"), "-o", "jsonpath={.data.v}"],
    ));
    assert_eq!(value, "two");
    let listed = ok(helm(dir.path(), &bob, &["list", "-A"]));
    let row = listed.lines().find(|l| l.starts_with(&release)).unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("dev") && row.contains("deployed") && !listed.contains("acme-"), "{listed}");

    let refused = fails(helm(dir.path(), &bob, &["install", &unique("rel"), chart, "-n", "main"]));
    assert!(refused.contains("not found") && !refused.contains("globex"), "{refused}");
    ok(helm(dir.path(), &bob, &["uninstall", &release, "-n", "dev"]));
}

#[test]
fn a_chart_with_a_kind_outside_the_ceiling_gets_the_real_refusal() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let dir = tempfile::tempdir().unwrap();
    let chart = tiny_chart(dir.path());
    std::fs::write(
        chart.join("templates/pdb.yaml"),
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  minAvailable: 1\n",
    )
    .unwrap();
    let refused = fails(helm(dir.path(), &bob, &["install", &unique("rel"), chart.to_str().unwrap(), "-n", "dev"]));
    assert!(refused.contains(r#"no matches for kind "PodDisruptionBudget" in version "policy/v1""#), "{refused}");
}
