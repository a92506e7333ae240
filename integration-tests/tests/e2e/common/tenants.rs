//! The example tree's tenants: a Canopy serving `proxy-config/example.yaml` once its reconciler
//! has materialized the tree, and kubeconfigs for its users.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::*;

/// A Canopy with the example tree, once the reconciler has materialized it (each test has its own
/// process, so none outlives the test).
pub fn canopy() -> Canopy {
    {
        let harness = Harness::shared();
        let canopy = Canopy::start_with(harness, Options { example_tree: true, ..Default::default() });
        // The reconciler creates the namespaces and members' RoleBindings.
        let bob = canopy.kubeconfig("bob", harness.token("bob"));
        let dave = canopy.kubeconfig("dave", harness.token("dave"));
        let carol = canopy.kubeconfig("carol", harness.token("carol"));
        eventually(Duration::from_secs(60), "the tree to be materialized", || {
            [(&bob, "dev"), (&bob, "prod"), (&dave, "main"), (&carol, "warehouse")]
                .iter()
                .all(|(kc, ns)| kubectl(kubectl_bin(), kc, &["-n", ns, "get", "configmaps"]).status.success())
        });
        canopy
    }
}

pub fn kubectl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| Harness::shared().kubectls()[0].clone())
}

pub fn as_user(canopy: &Canopy, user: &str) -> PathBuf {
    canopy.kubeconfig(user, Harness::shared().token(user))
}

pub fn in_view(canopy: &Canopy, user: &str, view: &str) -> PathBuf {
    canopy.kubeconfig_in_view(user, Harness::shared().token(user), Some(view))
}

pub fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// A secret type the example tree's acme hides.
pub const SSH_AUTH: &str = "kubernetes.io/ssh-auth";

/// The harness admin's kubeconfig (not through Canopy).
pub fn admin_kubeconfig() -> &'static Path {
    Path::new(Harness::shared().var("ADMIN_KUBECONFIG"))
}

/// Creates a secret as the platform admin in a physical namespace.
pub fn admin_secret(physical: &str, name: &str, kind: &str) {
    let mut args = vec!["-n", physical, "create", "secret", "generic", name, "--type", kind];
    args.push(if kind == SSH_AUTH { "--from-literal=ssh-privatekey=k" } else { "--from-literal=k=v" });
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &args));
}

/// Whether the admin sees `kind/name` in the physical namespace.
pub fn exists_upstream(physical: &str, kind: &str, name: &str) -> bool {
    kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", physical, "get", kind, name]).status.success()
}
