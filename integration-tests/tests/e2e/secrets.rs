//! Secrets by type (design invariant 5), against the real apiserver through the example tree,
//! where acme/web allows Opaque, TLS, registry, basic-auth and service-account-token secrets
//! but not `kubernetes.io/ssh-auth`: such a secret is 404 by name, absent from lists (plain,
//! `-A`, JSON) and watches; it cannot be created; and no pod or pod template may name it — nor a
//! secret that does not exist. Across namespaces, each namespace shows the types its owner allows.

use std::time::Duration;

use crate::common::tenants::*;
use crate::common::*;

const HIDDEN: &str = SSH_AUTH;

#[test]
fn secrets_of_other_types_are_invisible() {
    let _tree = tree::reading();
    let canopy = canopy();
    let (hidden, shown) = (unique("ssh"), unique("plain"));
    admin_secret("acme-web-dev", &hidden, HIDDEN);
    admin_secret("acme-web-dev", &shown, "Opaque");
    let bob = as_user(&canopy, "bob");
    let missing = fails(kubectl(kubectl_bin(), &bob, &["-n", "dev", "get", "secret", &hidden]));
    assert!(
        missing.contains("(NotFound)") && missing.contains(&format!("secrets \"{hidden}\" not found")),
        "{missing}"
    );
    assert!(!missing.contains("acme-web-dev") && !missing.contains("ssh-auth"), "{missing}");
    let one = ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "get", "secret", &shown]));
    assert!(one.contains(&shown) && one.contains("Opaque"), "{one}");
    for args in [
        vec!["-n", "dev", "get", "secrets"],
        vec!["-n", "dev", "get", "secrets", "-o", "wide"],
        vec!["-n", "dev", "get", "secrets", "-o", "json"],
        vec!["-n", "dev", "get", "secrets", "-o", "name"],
        vec!["-n", "dev", "get", "secrets", "--chunk-size", "1"],
        vec!["get", "secrets", "-A"],
        vec!["get", "secrets", "-A", "-o", "json"],
    ] {
        let listed = ok(kubectl(kubectl_bin(), &bob, &args));
        assert!(listed.contains(&shown), "{args:?}: {listed}");
        assert!(!listed.contains(&hidden) && !listed.contains(HIDDEN), "{args:?}: {listed}");
    }
    // Deleting or changing it is refused as for a missing secret, and it stays.
    let delete = fails(kubectl(kubectl_bin(), &bob, &["-n", "dev", "delete", "secret", &hidden]));
    assert!(delete.contains("(NotFound)"), "{delete}");
    let patch = fails(kubectl(
        kubectl_bin(),
        &bob,
        &["-n", "dev", "patch", "secret", &hidden, "-p", r#"{"data":{"x":"eA=="}}"#],
    ));
    assert!(patch.contains("(NotFound)") && !patch.contains(HIDDEN), "{patch}");
    assert!(exists_upstream("acme-web-dev", "secret", &hidden));
}

#[test]
fn across_namespaces_each_namespace_shows_its_owners_types() {
    let _tree = tree::reading();
    let canopy = canopy();
    // acme allows Helm release secrets; acme/data, which owns data-warehouse, Opaque only.
    let (release, plain) = (unique("release"), unique("plain"));
    admin_secret("acme-data-warehouse", &release, "helm.sh/release.v1");
    admin_secret("acme-data-warehouse", &plain, "Opaque");
    let alice = as_user(&canopy, "alice");
    for args in [vec!["get", "secrets", "-A"], vec!["get", "secrets", "-A", "-o", "json"]] {
        let listed = ok(kubectl(kubectl_bin(), &alice, &args));
        assert!(listed.contains(&plain), "{args:?}: {listed}");
        assert!(!listed.contains(&release), "{args:?} shows a type acme/data does not allow: {listed}");
    }
    let missing = fails(kubectl(kubectl_bin(), &alice, &["-n", "data-warehouse", "get", "secret", &release]));
    assert!(missing.contains("(NotFound)"), "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_drop_events_about_secrets_of_other_types() {
    let _tree = tree::reading();
    use futures_util::StreamExt;
    let canopy = canopy();
    let token = Harness::shared().token("bob").to_owned();
    let http = canopy.http();
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
    // One namespace (plain and as kubectl's Table watch) and across the view (`-A`).
    let mut streams = Vec::new();
    for (path, accept) in [
        ("/api/v1/namespaces/prod/secrets?watch=true", "application/json"),
        ("/api/v1/namespaces/prod/secrets?watch=true", table),
        ("/api/v1/secrets?watch=true", "application/json"),
    ] {
        let response = http
            .get(format!("{}{path}", canopy.url))
            .header("accept", accept)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        streams.push(response.bytes_stream());
    }
    let (hidden, shown) = (unique("w-ssh"), unique("w-plain"));
    admin_secret("acme-web-prod", &hidden, HIDDEN);
    admin_secret("acme-web-prod", &shown, "Opaque");
    for (i, stream) in streams.iter_mut().enumerate() {
        let mut seen = String::new();
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(Ok(chunk)) = stream.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen.contains(&shown) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "stream {i}: no event for {shown}: {seen}");
        // The hidden secret was created first, so its event would have come before.
        assert!(!seen.contains(&hidden) && !seen.contains(HIDDEN), "stream {i}: {seen}");
        assert!(!seen.contains("acme-web-prod"), "stream {i}: {seen}");
        for line in seen.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}

#[test]
fn secrets_of_other_types_cannot_be_created() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let name = unique("mine");
    let refused = fails(kubectl(
        kubectl_bin(),
        &bob,
        &["-n", "dev", "create", "secret", "generic", &name, "--type", HIDDEN, "--from-literal=ssh-privatekey=k"],
    ));
    // `kubectl create secret` words refusals its own way: "failed to create secret … is forbidden".
    assert!(refused.contains("is forbidden") && refused.contains(HIDDEN), "{refused}");
    assert!(!refused.contains("acme-web-dev"), "{refused}");
    assert!(!exists_upstream("acme-web-dev", "secret", &name));
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: dev}}\ntype: {HIDDEN}\nstringData: {{ssh-privatekey: k}}\n"
    );
    let applied = fails(kubectl_stdin(kubectl_bin(), &bob, &["apply", "--server-side", "-f", "-"], Some(&manifest)));
    assert!(applied.contains("(Forbidden)") && applied.contains(HIDDEN), "{applied}");
    assert!(!exists_upstream("acme-web-dev", "secret", &name));
    // Allowed types are created as before.
    ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "create", "secret", "generic", &name, "--from-literal=k=v"]));
    assert!(exists_upstream("acme-web-dev", "secret", &name));
}

/// A pod in `dev` whose spec (indented YAML under `spec:`) is `spec`.
fn pod(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: dev}}\nspec:\n{spec}")
}

#[test]
fn pods_may_reference_only_existing_secrets_of_allowed_types() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let (hidden, shown) = (unique("p-ssh"), unique("p-plain"));
    admin_secret("acme-web-dev", &hidden, HIDDEN);
    admin_secret("acme-web-dev", &shown, "Opaque");
    let container = "  - name: m\n    image: idle\n";
    let references = [
        (
            "volume",
            "spec.volumes[0].secret.secretName",
            format!("  volumes: [{{name: s, secret: {{secretName: SECRET}}}}]\n  containers:\n{container}"),
        ),
        (
            "projected",
            "spec.volumes[0].projected.sources[0].secret.name",
            format!(
                "  volumes: [{{name: s, projected: {{sources: [{{secret: {{name: SECRET}}}}]}}}}]\n  containers:\n{container}"
            ),
        ),
        (
            "env",
            "spec.containers[0].env[0].valueFrom.secretKeyRef.name",
            format!(
                "  containers:\n{container}    env: [{{name: E, valueFrom: {{secretKeyRef: {{name: SECRET, key: k}}}}}}]\n"
            ),
        ),
        (
            "envfrom",
            "spec.initContainers[0].envFrom[0].secretRef.name",
            format!(
                "  initContainers:\n  - name: i\n    image: idle\n    envFrom: [{{secretRef: {{name: SECRET}}}}]\n  containers:\n{container}"
            ),
        ),
        (
            "pull",
            "spec.imagePullSecrets[0].name",
            format!("  imagePullSecrets: [{{name: SECRET}}]\n  containers:\n{container}"),
        ),
    ];
    for (kind, field, spec) in &references {
        for secret in [hidden.as_str(), "no-such-secret"] {
            let name = unique(&format!("ref-{kind}"));
            let manifest = pod(&name, &spec.replace("SECRET", secret));
            let refused = fails(kubectl_stdin(kubectl_bin(), &bob, &["create", "-f", "-"], Some(&manifest)));
            assert!(refused.contains("(Forbidden)") && refused.contains(field), "{kind} {secret}: {refused}");
            assert!(refused.contains(&format!("secret \"{secret}\"")), "{kind} {secret}: {refused}");
            assert!(!refused.contains(HIDDEN) && !refused.contains("acme-web-dev"), "{refused}");
            assert!(!exists_upstream("acme-web-dev", "pod", &name), "{kind} {secret}: created upstream");
        }
        let name = unique(&format!("ok-{kind}"));
        ok(kubectl_stdin(
            kubectl_bin(),
            &bob,
            &["create", "-f", "-"],
            Some(&pod(&name, &spec.replace("SECRET", &shown))),
        ));
        assert!(exists_upstream("acme-web-dev", "pod", &name), "{kind}");
    }
}

#[test]
fn pod_templates_may_not_reference_missing_secrets() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let name = unique("deploy");
    let missing = unique("missing");
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: dev}}\nspec:\n  selector: {{matchLabels: {{app: x}}}}\n  template:\n    metadata: {{labels: {{app: x}}}}\n    spec:\n      containers: [{{name: m, image: idle, envFrom: [{{secretRef: {{name: {missing}}}}}]}}]\n"
    );
    let refused = fails(kubectl_stdin(kubectl_bin(), &bob, &["apply", "-f", "-"], Some(&manifest)));
    assert!(refused.contains("(Forbidden)"), "{refused}");
    assert!(refused.contains("spec.template.spec.containers[0].envFrom[0].secretRef.name"), "{refused}");
    assert!(refused.contains(&missing) && refused.contains("does not exist"), "{refused}");
    assert!(!exists_upstream("acme-web-dev", "deployment", &name));
    // Once the secret exists, the same Deployment is accepted.
    ok(kubectl(kubectl_bin(), &bob, &["-n", "dev", "create", "secret", "generic", &missing, "--from-literal=k=v"]));
    ok(kubectl_stdin(kubectl_bin(), &bob, &["apply", "-f", "-"], Some(&manifest)));
    assert!(exists_upstream("acme-web-dev", "deployment", &name));
    // Patches are judged on their result, whatever their type.
    let hidden = unique("d-ssh");
    admin_secret("acme-web-dev", &hidden, HIDDEN);
    let volume = format!(r#"{{"name":"s","secret":{{"secretName":"{hidden}"}}}}"#);
    for (kind, patch) in [
        ("strategic", format!(r#"{{"spec":{{"template":{{"spec":{{"volumes":[{volume}]}}}}}}}}"#)),
        ("merge", format!(r#"{{"spec":{{"template":{{"spec":{{"volumes":[{volume}]}}}}}}}}"#)),
        ("json", format!(r#"[{{"op":"add","path":"/spec/template/spec/volumes","value":[{volume}]}}]"#)),
    ] {
        let refused = fails(kubectl(
            kubectl_bin(),
            &bob,
            &["-n", "dev", "patch", "deployment", &name, "--type", kind, "-p", &patch],
        ));
        assert!(
            refused.contains("(Forbidden)") && refused.contains("spec.template.spec.volumes[0].secret.secretName"),
            "{kind}: {refused}"
        );
    }
    let volumes = ok(kubectl(
        kubectl_bin(),
        admin_kubeconfig(),
        &["-n", "acme-web-dev", "get", "deployment", &name, "-o", "jsonpath={.spec.template.spec.volumes}"],
    ));
    assert!(!volumes.contains(&hidden), "{volumes}");
}

/// Issue 21, item 4: metadata-only answers (kube-rs's `list_metadata`, client-go's metadata
/// informer) show exactly the secrets of the view's types, as the plain list does; before, the
/// type filter could not see a type in them and answered `items: []`.
#[tokio::test(flavor = "multi_thread")]
async fn metadata_only_answers_show_the_secrets_of_the_views_types() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, ListParams};
    let _tree = tree::reading();
    let canopy = canopy();
    let (hidden, shown) = (unique("m-ssh"), unique("m-plain"));
    admin_secret("acme-web-dev", &hidden, HIDDEN);
    admin_secret("acme-web-dev", &shown, "Opaque");
    let bob = as_user(&canopy, "bob");
    // What the view should show: every secret upstream but the hidden type, by name.
    let admin: Api<Secret> = Api::namespaced(reconciler::admin().await, "acme-web-dev");
    let mut expected: Vec<String> = admin
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| s.type_.as_deref() != Some(HIDDEN))
        .filter_map(|s| s.metadata.name)
        .collect();
    expected.sort();
    assert!(expected.contains(&shown) && !expected.contains(&hidden));

    let api: Api<Secret> = Api::namespaced(reconciler::client(bob.to_str().unwrap()).await, "dev");
    let listed = api.list_metadata(&ListParams::default()).await.unwrap();
    let mut names: Vec<String> = listed.items.iter().filter_map(|m| m.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, expected, "kube-rs list_metadata");
    assert!(listed.items.iter().all(|m| m.metadata.namespace.as_deref() == Some("dev")));
    assert_eq!(api.get_metadata(&shown).await.unwrap().metadata.name.as_deref(), Some(shown.as_str()));
    assert!(api.get_metadata(&hidden).await.is_err(), "a hidden secret's metadata is 404");

    let informed: Vec<String> =
        serde_json::from_str(&ok(client_go(&bob, &["metadata-informer", "dev", "secrets"]))).unwrap();
    assert_eq!(informed, expected, "client-go metadata informer");
}
