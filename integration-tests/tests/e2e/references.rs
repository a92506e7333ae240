//! References stay in the tree (design invariant 6), against the real apiserver through the
//! example tree: acme's ceiling lets RoleBindings name a Role of their namespace or the
//! ClusterRoles `edit` and `view`, bind members at the view or below and ServiceAccounts of the
//! view's namespaces, and use the storage classes `standard` and `premium` and the ingress class
//! `public`. Roles may not grant beyond the ceiling; pods and pod templates run only as
//! ServiceAccounts that exist. Every refusal is a 403 saying what is wrong in the view's names,
//! and changes nothing upstream. Each test removes what it created.

use std::path::Path;

use crate::common::tenants::*;
use crate::common::*;

fn admin() -> &'static Path {
    Path::new(Harness::shared().var("ADMIN_KUBECONFIG"))
}

/// Whether the admin sees `kind/name` in the physical namespace (or cluster-wide).
fn exists_upstream(physical: Option<&str>, kind: &str, name: &str) -> bool {
    let mut args = vec!["get", kind, name];
    if let Some(namespace) = physical {
        args.extend(["-n", namespace]);
    }
    kubectl(kubectl_bin(), admin(), &args).status.success()
}

/// Objects to delete as the admin when the test ends, however it ends: `(physical namespace, kind,
/// name)`.
#[derive(Default)]
struct Cleanup(Vec<(Option<String>, String, String)>);

impl Cleanup {
    fn add(&mut self, physical: Option<&str>, kind: &str, name: &str) {
        self.0.push((physical.map(str::to_owned), kind.to_owned(), name.to_owned()));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (namespace, kind, name) in self.0.drain(..).rev() {
            let mut scope = Vec::new();
            if let Some(namespace) = &namespace {
                scope.extend(["-n", namespace.as_str()]);
            }
            // The harness runs no pvc-protection controller to lift the claim's finalizer.
            if kind == "pvc" {
                let unprotect =
                    [&scope[..], &["patch", "pvc", &name, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]]
                        .concat();
                let _ = kubectl(kubectl_bin(), admin(), &unprotect);
            }
            let delete = [&scope[..], &["delete", &kind, &name, "--ignore-not-found", "--wait=false"]].concat();
            let _ = kubectl(kubectl_bin(), admin(), &delete);
        }
    }
}

/// Asserts a refusal: Forbidden, saying `why`, naming no physical namespace of acme.
fn refused(output: std::process::Output, why: &str) -> String {
    let err = fails(output);
    assert!(err.contains("is forbidden") && err.contains(why), "expected {why:?} in: {err}");
    assert!(!err.contains("acme-web-") && !err.contains("acme-data-"), "{err}");
    err
}

#[test]
fn rolebindings_name_bindable_roles_and_subjects_of_the_view() {
    let _tree = tree::reading();
    let canopy = canopy();
    let alice = in_view(&canopy, "alice", "acme/web");
    let bin = kubectl_bin();
    let mut cleanup = Cleanup::default();
    let create = |name: &str, args: &[&str]| {
        kubectl(bin, &alice, &[&["-n", "dev", "create", "rolebinding", name], args].concat())
    };

    let name = unique("rb-refused");
    for (args, why) in [
        (
            vec!["--clusterrole=cluster-admin", "--user=bob"],
            r#"roleRef ClusterRole "cluster-admin" is not bindable in view acme/web"#,
        ),
        // Bindable by default, but acme names only edit and view.
        (vec!["--clusterrole=admin", "--user=bob"], r#"roleRef ClusterRole "admin" is not bindable in view acme/web"#),
        (
            vec!["--role=missing", "--user=bob"],
            r#"roleRef names Role "missing", which does not exist in namespace "dev""#,
        ),
        (vec!["--clusterrole=view", "--user=dave"], r#"subject User "dave" is not a member of view acme/web or below"#),
        // Another tenant's namespace, by the name it has in its own view and by its physical name.
        (
            vec!["--clusterrole=view", "--serviceaccount=main:x"],
            "subject ServiceAccount main/x is outside view acme/web",
        ),
        (
            vec!["--clusterrole=view", "--serviceaccount=globex-main:x"],
            "subject ServiceAccount <another namespace>/x is outside view acme/web",
        ),
        (
            vec!["--clusterrole=view", "--group=system:serviceaccounts:globex-main"],
            "names ServiceAccounts outside view acme/web",
        ),
    ] {
        refused(create(&name, &args), why);
        assert!(!exists_upstream(Some("acme-web-dev"), "rolebinding", &name), "{args:?}: created upstream");
    }
    // Server-side apply is judged too (the apiserver refuses this dry run itself; Canopy says why).
    let applied = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {name}, namespace: dev}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\nsubjects: [{{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}}]\n"
    );
    refused(kubectl_stdin(bin, &alice, &["apply", "--server-side", "-f", "-"], Some(&applied)), "is not bindable");
    assert!(!exists_upstream(Some("acme-web-dev"), "rolebinding", &name));

    // A Role of the namespace, and the allowed ClusterRoles, bound to members and ServiceAccounts.
    let role = unique("reader");
    cleanup.add(Some("acme-web-dev"), "role", &role);
    ok(kubectl(bin, &alice, &["-n", "dev", "create", "role", &role, "--verb=get", "--resource=pods"]));
    let to_role = unique("rb-role");
    cleanup.add(Some("acme-web-dev"), "rolebinding", &to_role);
    ok(create(&to_role, &[&format!("--role={role}"), "--user=bob", "--serviceaccount=dev:builder"]));
    let subjects = ok(kubectl(
        bin,
        admin(),
        &["-n", "acme-web-dev", "get", "rolebinding", &to_role, "-o", "jsonpath={.subjects}"],
    ));
    assert!(subjects.contains("\"namespace\":\"acme-web-dev\""), "{subjects}");
    let to_view = unique("rb-view");
    cleanup.add(Some("acme-web-dev"), "rolebinding", &to_view);
    ok(create(&to_view, &["--clusterrole=view", "--group=system:serviceaccounts:prod"]));
    assert!(exists_upstream(Some("acme-web-dev"), "rolebinding", &to_view));

    // Patches are judged on their result: adding another tenant's member changes nothing.
    let patch = r#"[{"op":"add","path":"/subjects/-","value":{"kind":"User","name":"dave","apiGroup":"rbac.authorization.k8s.io"}}]"#;
    refused(
        kubectl(bin, &alice, &["-n", "dev", "patch", "rolebinding", &to_role, "--type=json", "-p", patch]),
        r#"subject User "dave" is not a member"#,
    );
    let after = ok(kubectl(
        bin,
        admin(),
        &["-n", "acme-web-dev", "get", "rolebinding", &to_role, "-o", "jsonpath={.subjects}"],
    ));
    assert_eq!(after, subjects);
}

#[test]
fn roles_may_not_grant_more_than_the_ceiling() {
    let _tree = tree::reading();
    let canopy = canopy();
    let alice = in_view(&canopy, "alice", "acme/web");
    let bin = kubectl_bin();
    let mut cleanup = Cleanup::default();
    let name = unique("role");
    let role = |rule: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {name}, namespace: dev}}\nrules: [{rule}]\n"
        )
    };
    for (rule, why) in [
        // The apiserver allows these (alice is admin of the namespace); acme's ceiling does not.
        (
            "{apiGroups: [policy], resources: [poddisruptionbudgets], verbs: [get]}",
            "rules[0] grants get on policy/poddisruptionbudgets, which the ceiling of view acme/web does not allow",
        ),
        (
            "{apiGroups: [''], resources: [pods/proxy], verbs: [get]}",
            "rules[0] grants get on pods/proxy (subresource proxy)",
        ),
        // Beyond what alice holds, too: the apiserver refuses the dry run, Canopy says why.
        ("{apiGroups: ['*'], resources: [pods], verbs: [get]}", "rules[0] grants get on */pods"),
    ] {
        refused(kubectl_stdin(bin, &alice, &["create", "-f", "-"], Some(&role(rule))), why);
        assert!(!exists_upstream(Some("acme-web-dev"), "role", &name));
    }
    // kubectl's own `create role` (sent as protobuf) is judged alike.
    refused(
        kubectl(bin, &alice, &["-n", "dev", "create", "role", &name, "--verb=get", "--resource=pods/proxy"]),
        "rules[0] grants get on pods/proxy (subresource proxy)",
    );

    // Growing an allowed Role beyond the ceiling is refused; it stays as it was.
    cleanup.add(Some("acme-web-dev"), "role", &name);
    ok(kubectl(bin, &alice, &["-n", "dev", "create", "role", &name, "--verb=get", "--resource=configmaps"]));
    let patch = r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":["autoscaling"],"resources":["horizontalpodautoscalers"],"verbs":["get"]}}]"#;
    refused(
        kubectl(bin, &alice, &["-n", "dev", "patch", "role", &name, "--type=json", "-p", patch]),
        "rules[1] grants get on autoscaling/horizontalpodautoscalers",
    );
    let rules = ok(kubectl(bin, admin(), &["-n", "acme-web-dev", "get", "role", &name, "-o", "jsonpath={.rules}"]));
    assert!(!rules.contains("autoscaling"), "{rules}");

    // A Role beyond the ceiling that exists anyway (the platform made it) may not be bound.
    let wide = unique("wide");
    cleanup.add(Some("acme-web-dev"), "role", &wide);
    ok(kubectl(
        bin,
        admin(),
        &[
            "-n",
            "acme-web-dev",
            "create",
            "role",
            &wide,
            "--verb=get",
            "--resource=horizontalpodautoscalers.autoscaling",
        ],
    ));
    let binding = unique("rb-wide");
    refused(
        kubectl(
            bin,
            &alice,
            &["-n", "dev", "create", "rolebinding", &binding, &format!("--role={wide}"), "--user=bob"],
        ),
        &format!(r#"roleRef Role "{wide}" grants get on autoscaling/horizontalpodautoscalers (its rules[0])"#),
    );
    assert!(!exists_upstream(Some("acme-web-dev"), "rolebinding", &binding));
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_bindings_are_judged_alike() {
    let _tree = tree::reading();
    use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
    use kube::api::{Api, DeleteParams, PostParams};

    let canopy = canopy();
    let kubeconfig = kube::config::Kubeconfig::read_from(in_view(&canopy, "alice", "acme/web")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(kube::Client::try_from(config).unwrap(), "prod");
    let binding = |name: &str, role: &str, subject: Subject| RoleBinding {
        metadata: kube::api::ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![subject]),
    };
    let account = |namespace: &str| Subject {
        kind: "ServiceAccount".into(),
        name: "deployer".into(),
        namespace: Some(namespace.into()),
        api_group: None,
    };
    let name = unique("kube-rs-rb");
    let mut cleanup = Cleanup::default();
    cleanup.add(Some("acme-web-prod"), "rolebinding", &name);
    for (role, subject, why) in [
        ("cluster-admin", account("prod"), r#"roleRef ClusterRole "cluster-admin" is not bindable in view acme/web"#),
        ("edit", account("main"), "subject ServiceAccount main/deployer is outside view acme/web"),
    ] {
        match bindings.create(&PostParams::default(), &binding(&name, role, subject)).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"), "{status:?}");
                assert!(status.message.contains(why), "{}", status.message);
            }
            other => panic!("{role}: expected 403, got {other:?}"),
        }
        assert!(!exists_upstream(Some("acme-web-prod"), "rolebinding", &name));
    }
    let created = bindings.create(&PostParams::default(), &binding(&name, "edit", account("prod"))).await.unwrap();
    assert_eq!(created.subjects.unwrap()[0].namespace.as_deref(), Some("prod"));
    bindings.delete(&name, &DeleteParams::default()).await.unwrap();
}

/// A pod in `dev` running as `account`.
fn pod(name: &str, account: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: dev}}\nspec:\n  serviceAccountName: {account}\n  containers: [{{name: m, image: idle}}]\n"
    )
}

/// A Deployment in `dev` whose pods run as `account`.
fn deployment(name: &str, account: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: dev}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      serviceAccountName: {account}\n      containers: [{{name: m, image: idle}}]\n"
    )
}

#[test]
fn pods_and_templates_run_as_existing_service_accounts() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let bin = kubectl_bin();
    let mut cleanup = Cleanup::default();
    let (account, missing) = (unique("runner"), unique("ghost"));
    let (pod_name, deploy_name) = (unique("sa-pod"), unique("sa-deploy"));
    cleanup.add(Some("acme-web-dev"), "serviceaccount", &account);
    cleanup.add(Some("acme-web-dev"), "pod", &pod_name);
    cleanup.add(Some("acme-web-dev"), "deployment", &deploy_name);

    refused(
        kubectl_stdin(bin, &bob, &["create", "-f", "-"], Some(&pod(&pod_name, &missing))),
        &format!(
            r#"spec.serviceAccountName names ServiceAccount "{missing}", which does not exist in namespace "dev""#
        ),
    );
    assert!(!exists_upstream(Some("acme-web-dev"), "pod", &pod_name));
    refused(
        kubectl_stdin(bin, &bob, &["apply", "-f", "-"], Some(&deployment(&deploy_name, &missing))),
        &format!(r#"spec.template.spec.serviceAccountName names ServiceAccount "{missing}", which does not exist"#),
    );
    assert!(!exists_upstream(Some("acme-web-dev"), "deployment", &deploy_name));

    ok(kubectl(bin, &bob, &["-n", "dev", "create", "serviceaccount", &account]));
    ok(kubectl_stdin(bin, &bob, &["create", "-f", "-"], Some(&pod(&pod_name, &account))));
    ok(kubectl_stdin(bin, &bob, &["apply", "-f", "-"], Some(&deployment(&deploy_name, &account))));
    assert!(exists_upstream(Some("acme-web-dev"), "pod", &pod_name));
    assert!(exists_upstream(Some("acme-web-dev"), "deployment", &deploy_name));
    // Pods without a ServiceAccount name run as `default`, which exists.
    let plain = unique("default-pod");
    cleanup.add(Some("acme-web-dev"), "pod", &plain);
    let manifest = pod(&plain, "default").replace("  serviceAccountName: default\n", "");
    ok(kubectl_stdin(bin, &bob, &["create", "-f", "-"], Some(&manifest)));

    // A patch pointing the template at a missing account is refused, and changes nothing.
    let patch = format!(r#"{{"spec":{{"template":{{"spec":{{"serviceAccountName":"{missing}"}}}}}}}}"#);
    refused(
        kubectl(bin, &bob, &["-n", "dev", "patch", "deployment", &deploy_name, "-p", &patch]),
        "spec.template.spec.serviceAccountName",
    );
    let stored = ok(kubectl(
        bin,
        admin(),
        &[
            "-n",
            "acme-web-dev",
            "get",
            "deployment",
            &deploy_name,
            "-o",
            "jsonpath={.spec.template.spec.serviceAccountName}",
        ],
    ));
    assert_eq!(stored, account);
}

/// A claim in `namespace` whose spec line for the class is `class` (empty: none).
fn claim(name: &str, namespace: &str, class: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n{class}"
    )
}

#[test]
fn claims_use_allowlisted_storage_classes_that_exist() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let bin = kubectl_bin();
    let mut cleanup = Cleanup::default();
    // `standard` exists; `premium`, also allowed in acme, does not.
    cleanup.add(None, "storageclass", "standard");
    ok(kubectl_stdin(
        bin,
        admin(),
        &["apply", "-f", "-"],
        Some(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: standard}\nprovisioner: kubernetes.io/no-provisioner\n",
        ),
    ));
    let name = unique("claim");
    cleanup.add(Some("acme-web-dev"), "pvc", &name);
    for (class, why) in [
        (
            "  storageClassName: fast\n",
            r#"spec.storageClassName names StorageClass "fast", which view acme/web does not allow (allowed: standard, premium)"#,
        ),
        (
            "  storageClassName: premium\n",
            r#"spec.storageClassName names StorageClass "premium", which does not exist"#,
        ),
        ("", "spec.storageClassName names no StorageClass"),
    ] {
        refused(kubectl_stdin(bin, &bob, &["create", "-f", "-"], Some(&claim(&name, "dev", class))), why);
        assert!(!exists_upstream(Some("acme-web-dev"), "pvc", &name), "{class}");
    }
    ok(kubectl_stdin(bin, &bob, &["create", "-f", "-"], Some(&claim(&name, "dev", "  storageClassName: standard\n"))));
    assert!(exists_upstream(Some("acme-web-dev"), "pvc", &name));

    // globex names no classes: any class that exists, or none.
    let dave = as_user(&canopy, "dave");
    let other = unique("claim");
    cleanup.add(Some("globex-main"), "pvc", &other);
    refused(
        kubectl_stdin(
            bin,
            &dave,
            &["create", "-f", "-"],
            Some(&claim(&other, "main", "  storageClassName: nowhere\n")),
        ),
        r#"StorageClass "nowhere", which does not exist"#,
    );
    ok(kubectl_stdin(bin, &dave, &["create", "-f", "-"], Some(&claim(&other, "main", ""))));
}

/// An Ingress in `dev`; `class` is its spec line for the class or its annotations (empty: none).
fn ingress(name: &str, annotations: &str, class: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: dev\n{annotations}spec:\n{class}  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}\n"
    )
}

#[test]
fn ingresses_use_allowlisted_ingress_classes_that_exist() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let bin = kubectl_bin();
    let mut cleanup = Cleanup::default();
    cleanup.add(None, "ingressclass", "public");
    ok(kubectl_stdin(
        bin,
        admin(),
        &["apply", "-f", "-"],
        Some(
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: public}\nspec: {controller: example.net/ingress}\n",
        ),
    ));
    let name = unique("ingress");
    cleanup.add(Some("acme-web-dev"), "ingress", &name);
    for (annotations, class, why) in [
        (
            "",
            "  ingressClassName: internal\n",
            r#"spec.ingressClassName names IngressClass "internal", which view acme/web does not allow (allowed: public)"#,
        ),
        (
            "  annotations: {kubernetes.io/ingress.class: internal}\n",
            "",
            r#"metadata.annotations[kubernetes.io/ingress.class] names IngressClass "internal""#,
        ),
        ("", "", "spec.ingressClassName names no IngressClass"),
    ] {
        refused(kubectl_stdin(bin, &bob, &["create", "-f", "-"], Some(&ingress(&name, annotations, class))), why);
        assert!(!exists_upstream(Some("acme-web-dev"), "ingress", &name));
    }
    ok(kubectl_stdin(bin, &bob, &["apply", "-f", "-"], Some(&ingress(&name, "", "  ingressClassName: public\n"))));
    assert!(exists_upstream(Some("acme-web-dev"), "ingress", &name));
}
