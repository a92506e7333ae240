//! Controllers confined by secret type (issue 20) against the real apiserver. The example tree's
//! ingress controller is a ServiceAccount whose ClusterRole reads every secret upstream; through
//! Canopy a kube-rs informer running as it sees the TLS secrets of every namespace, tenant or
//! not, under their physical names, and no other type: a GET of one is 404, and the list equals
//! the admin's list filtered by type. The certificate issuer writes TLS secrets but no other
//! type; the backup operator reaches acme's subtree only; a reload that removes a controller
//! ends its open watches.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;

use crate::common::tenants::*;
use crate::common::*;

const TLS: &str = "kubernetes.io/tls";

/// A token of ServiceAccount `namespace/name`, whom the platform lets read and create secrets
/// and read namespaces across the cluster, as a controller's ClusterRole would.
fn platform_account(namespace: &str, name: &str) -> String {
    let role = format!("e2e-controller-{namespace}-{name}");
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [
  {{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "{namespace}"}}}},
  {{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {{"name": "{name}", "namespace": "{namespace}"}}}},
  {{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {{"name": "{role}"}},
    "rules": [{{"apiGroups": [""], "resources": ["secrets", "namespaces"], "verbs": ["get", "list", "watch", "create"]}}]}},
  {{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {{"name": "{role}"}},
    "roleRef": {{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "{role}"}},
    "subjects": [{{"kind": "ServiceAccount", "name": "{name}", "namespace": "{namespace}"}}]}}]}}"#
    );
    ok(kubectl_stdin(kubectl_bin(), admin_kubeconfig(), &["apply", "-f", "-"], Some(&manifest)));
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", namespace, "create", "token", name])).trim().to_owned()
}

/// Creates, as the admin, a secret of type `kind` (TLS ones carry the keys their type requires).
fn secret(physical: &str, name: &str, kind: &str) {
    if kind != TLS {
        return admin_secret(physical, name, kind);
    }
    let args = ["-n", physical, "create", "secret", "generic", name, "--type", TLS, "--from-literal=tls.crt=c"];
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &[&args[..], &["--from-literal=tls.key=k"]].concat()));
}

/// A kube-rs client for `kubeconfig`.
async fn client(kubeconfig: &std::path::Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// `namespace/name` of every TLS secret the admin sees, asking the apiserver to filter by type.
fn admin_tls_secrets() -> BTreeSet<String> {
    let jsonpath = r#"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}"#;
    let args = ["get", "secrets", "-A", "--field-selector", "type=kubernetes.io/tls", "-o", jsonpath];
    ok(kubectl(kubectl_bin(), admin_kubeconfig(), &args)).lines().map(str::to_owned).collect()
}

fn key(secret: &Secret) -> String {
    format!("{}/{}", secret.metadata.namespace.as_deref().unwrap_or(""), secret.metadata.name.as_deref().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ingress_controller_informs_tls_secrets_cluster_wide_and_no_other_type() {
    let _tree = tree::reading();
    let canopy = canopy();
    let harness = Harness::shared();
    let outside = admin_namespace(harness, "outside");
    let _cleanup = NamespaceCleanup(vec![outside.clone()]);
    let token = platform_account("ingress-nginx", "ingress-nginx");
    let kubeconfig = canopy.kubeconfig("ingress", &token);
    let mark = unique("ctl");
    let namespaces = ["acme-web-dev", "acme-data-warehouse", "globex-main", outside.as_str()];
    let mut expected = BTreeSet::new();
    for ns in namespaces {
        secret(ns, &format!("{mark}-tls"), TLS);
        secret(ns, &format!("{mark}-opaque"), "Opaque");
        expected.insert(format!("{ns}/{mark}-tls"));
    }

    // A watcher as informers run one: list, then watch from the list's version. Secrets created
    // after the list are created once it is complete, the Opaque one first: when the TLS one
    // arrives, the Opaque one would have come before it had it not been dropped.
    let secrets: Api<Secret> = Api::all(client(&kubeconfig).await);
    let later = format!("acme-web-prod/{mark}-later-tls");
    let mut events = watcher(secrets.clone(), watcher::Config::default()).boxed();
    let mut seen = BTreeSet::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            let applied = match event.unwrap() {
                watcher::Event::InitDone => {
                    secret("acme-web-prod", &format!("{mark}-later-opaque"), "Opaque");
                    secret("acme-web-prod", &format!("{mark}-later-tls"), TLS);
                    continue;
                }
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => s,
                _ => continue,
            };
            assert_eq!(applied.type_.as_deref(), Some(TLS), "{}", key(&applied));
            seen.insert(key(&applied));
            if key(&applied) == later {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen:?}");
    expected.insert(later);
    let ours: BTreeSet<String> = seen.into_iter().filter(|k| k.contains(&mark)).collect();
    assert_eq!(ours, expected, "the TLS secrets, under physical names, across tenants and the platform");

    // A list equals the admin's list filtered by type (eventually: other tests create secrets).
    let mut last = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..20 {
        let listed = secrets.list(&ListParams::default()).await.unwrap();
        assert!(listed.items.iter().all(|s| s.type_.as_deref() == Some(TLS)));
        last = (listed.items.iter().map(key).collect(), admin_tls_secrets());
        if last.0 == last.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last.0, last.1, "the controller's list against the admin's filtered by type");

    // Other types do not exist: GET is 404; kubectl says so too, naming the physical namespace.
    let in_outside: Api<Secret> = Api::namespaced(client(&kubeconfig).await, &outside);
    match in_outside.get(&format!("{mark}-opaque")).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404, "{status:?}"),
        other => panic!("an Opaque secret was answered: {other:?}"),
    }
    assert_eq!(in_outside.get(&format!("{mark}-tls")).await.unwrap().type_.as_deref(), Some(TLS));
    let err =
        fails(kubectl(kubectl_bin(), &kubeconfig, &["-n", "globex-main", "get", "secret", &format!("{mark}-opaque")]));
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
    // The ingress controller may not write secrets at all, whatever its RBAC allows.
    let err = fails(kubectl(
        kubectl_bin(),
        &kubeconfig,
        &["-n", &outside, "create", "secret", "generic", "nope", "--from-literal=k=v"],
    ));
    assert!(err.contains("forbidden") && err.contains("cannot create"), "{err}");
    assert!(!exists_upstream(&outside, "secret", "nope"));
}

#[test]
fn a_certificate_issuer_writes_tls_secrets_and_no_other_type() {
    let _tree = tree::reading();
    let canopy = canopy();
    let token = platform_account("cert-manager", "cert-manager");
    let issuer = canopy.kubeconfig("cert-manager", &token);
    let (tls, opaque) = (unique("issued"), unique("opaque"));
    for ns in ["acme-web-dev", "kube-public"] {
        let args = [
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            &tls,
            "--type",
            TLS,
            "--from-literal=tls.crt=c",
            "--from-literal=tls.key=k",
        ];
        ok(kubectl(kubectl_bin(), &issuer, &args));
        assert!(exists_upstream(ns, "secret", &tls));
        let err = fails(kubectl(
            kubectl_bin(),
            &issuer,
            &["-n", ns, "create", "secret", "generic", &opaque, "--from-literal=k=v"],
        ));
        assert!(err.contains("forbidden") && err.contains("secret type \"Opaque\" is not allowed"), "{err}");
        assert!(!exists_upstream(ns, "secret", &opaque));
        ok(kubectl(kubectl_bin(), admin_kubeconfig(), &["-n", ns, "delete", "secret", &tls]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_operator_reaches_its_subtree_only() {
    let _tree = tree::reading();
    let canopy = canopy();
    let token = platform_account("backup", "velero");
    let kubeconfig = canopy.kubeconfig("velero", &token);
    let mark = unique("backup");
    for ns in ["acme-web-dev", "acme-data-warehouse", "globex-main"] {
        secret(ns, &format!("{mark}-tls"), TLS);
        secret(ns, &format!("{mark}-ssh"), SSH_AUTH);
    }
    let secrets: Api<Secret> = Api::all(client(&kubeconfig).await);
    let listed = secrets.list(&ListParams::default()).await.unwrap();
    let acme = ["acme-web-dev", "acme-web-prod", "acme-data-warehouse"];
    for s in &listed.items {
        assert!(acme.contains(&s.metadata.namespace.as_deref().unwrap_or("")), "{}", key(s));
        assert!(matches!(s.type_.as_deref(), Some("Opaque" | TLS)), "{}", key(s));
    }
    let ours: BTreeSet<String> = listed.items.iter().map(key).filter(|k| k.contains(&mark)).collect();
    let expected: BTreeSet<String> =
        [format!("acme-web-dev/{mark}-tls"), format!("acme-data-warehouse/{mark}-tls")].into();
    assert_eq!(ours, expected);
    let err =
        fails(kubectl(kubectl_bin(), &kubeconfig, &["-n", "globex-main", "get", "secret", &format!("{mark}-tls")]));
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
    let namespaces = ok(kubectl(kubectl_bin(), &kubeconfig, &["get", "namespaces", "-o", "name"]));
    let namespaces: BTreeSet<&str> = namespaces.lines().collect();
    assert!(
        namespaces.contains("namespace/acme-web-dev") && !namespaces.contains("namespace/globex-main"),
        "{namespaces:?}"
    );
    assert!(!namespaces.contains("namespace/kube-system"), "{namespaces:?}");
}

#[test]
fn a_reload_removing_a_controller_ends_its_watches() {
    let _tree = tree::reading();
    let canopy = canopy();
    let token = platform_account("ingress-nginx", "ingress-nginx");
    let kubeconfig = canopy.kubeconfig("ingress", &token);
    ok(kubectl(kubectl_bin(), &kubeconfig, &["get", "secrets", "-A"]));
    let events = open_watch(&canopy, &token, "/api/v1/secrets?watch=1");

    let original = std::fs::read_to_string(&canopy.config).unwrap();
    let without =
        original.replace("name: ingress-nginx, namespace: ingress-nginx", "name: retired, namespace: ingress-nginx");
    assert_ne!(without, original);
    std::fs::write(&canopy.config, without).unwrap();
    let events = events.recv_timeout(Duration::from_secs(30)).expect("the watch stayed open after the reload");
    let last = events.lines().last().unwrap_or_default();
    assert!(last.contains(r#""type":"ERROR""#) && last.contains(r#""code":403"#), "the watch ends saying why: {last}");
    let err = fails(kubectl(kubectl_bin(), &kubeconfig, &["get", "secrets", "-A"]));
    assert!(err.contains("Forbidden"), "{err}");
}

/// A watch of `path` with `token`, once it is open; the channel gets its events when it ends.
fn open_watch(canopy: &Canopy, token: &str, path: &str) -> mpsc::Receiver<String> {
    let (http, url, token) = (canopy.http(), format!("{}{path}", canopy.url), token.to_owned());
    let (open, opened) = mpsc::channel();
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let _ = open.send(());
            let _ = done.send(response.text().await.unwrap_or_default());
        })
    });
    opened.recv_timeout(Duration::from_secs(30)).expect("the watch never opened");
    ended
}
