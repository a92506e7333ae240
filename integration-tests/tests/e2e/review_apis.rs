//! Issue 21, item 6: the review APIs in a view. In-cluster apps that authenticate and authorize
//! their own callers (kube-rbac-proxy style) send TokenReviews and (Local)SubjectAccessReviews;
//! through Canopy they get the apiserver's answers about the view, in its names, and nothing
//! about other tenants.

use serde_json::{Value, json};

use crate::common::tenants::*;
use crate::common::*;

/// Creates `review` through `kubeconfig` (in namespace `namespace`, if any) and returns the answer.
/// Without client-side validation: for a kind without PATCH kubectl's validation lists CRDs,
/// which tenants may not (the apiserver refuses it them too).
fn create(kubeconfig: &std::path::Path, namespace: Option<&str>, review: &Value) -> Value {
    let mut args = vec!["create", "--validate=false", "-o", "json", "-f", "-"];
    if let Some(namespace) = namespace {
        args.extend(["-n", namespace]);
    }
    serde_json::from_str(&ok(kubectl_stdin(kubectl_bin(), kubeconfig, &args, Some(&review.to_string())))).unwrap()
}

fn access(user: &str, namespace: &str, verb: &str) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": user, "groups": ["system:serviceaccounts"],
        "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": "configmaps"}}})
}

fn token_review(token: &str) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
}

/// A service account in `physical` with `view` there, and a token of it.
fn account(physical: &str) -> (String, String) {
    let admin = admin_kubeconfig();
    let name = unique("reviewer");
    ok(kubectl(kubectl_bin(), admin, &["-n", physical, "create", "serviceaccount", &name]));
    let subject = format!("{physical}:{name}");
    ok(kubectl(
        kubectl_bin(),
        admin,
        &["-n", physical, "create", "rolebinding", &name, "--clusterrole=view", "--serviceaccount", &subject],
    ));
    let token = ok(kubectl(kubectl_bin(), admin, &["-n", physical, "create", "token", &name])).trim().to_owned();
    (name, token)
}

#[test]
fn review_apis_answer_about_the_view_in_its_names() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let admin = admin_kubeconfig();
    let (name, token) = account("acme-web-dev");

    // TokenReview: the apiserver's answer, the service account's namespace virtual.
    let answer = create(&bob, None, &token_review(&token));
    let direct = create(admin, None, &token_review(&token));
    assert_eq!(answer["status"]["authenticated"], true);
    assert_eq!(direct["status"]["user"]["username"], format!("system:serviceaccount:acme-web-dev:{name}"));
    assert_eq!(answer["status"]["user"]["username"], format!("system:serviceaccount:dev:{name}"));
    let groups = answer["status"]["user"]["groups"].to_string();
    assert!(groups.contains("system:serviceaccounts:dev") && !groups.contains("acme-web-dev"), "{groups}");

    // SubjectAccessReview: upstream RBAC decides within the view, as it does asked directly.
    let subject = format!("system:serviceaccount:dev:{name}");
    let physical_subject = format!("system:serviceaccount:acme-web-dev:{name}");
    for verb in ["get", "delete"] {
        let answer = create(&bob, None, &access(&subject, "dev", verb));
        let direct = create(admin, None, &access(&physical_subject, "acme-web-dev", verb));
        assert_eq!(answer["status"]["allowed"], direct["status"]["allowed"], "{verb}: {answer} vs {direct}");
        assert!(!answer.to_string().contains("acme-web-dev"), "{answer}");
    }
    assert_eq!(create(&bob, None, &access(&subject, "dev", "get"))["status"]["allowed"], true);

    // LocalSubjectAccessReview in the view's namespace.
    let mut local = access(&subject, "dev", "list");
    local["kind"] = "LocalSubjectAccessReview".into();
    assert_eq!(create(&bob, Some("dev"), &local)["status"]["allowed"], true);
    local["spec"]["resourceAttributes"]["namespace"] = "prod".into();
    let refused = fails(kubectl_stdin(
        kubectl_bin(),
        &bob,
        &["create", "--validate=false", "-n", "dev", "-f", "-"],
        Some(&local.to_string()),
    ));
    assert!(refused.contains("must match namespace: dev"), "{refused}");

    // Discovery lists them, as the apiserver does.
    let resources = ok(kubectl(kubectl_bin(), &bob, &["api-resources", "-o", "name"]));
    for resource in [
        "tokenreviews.authentication.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
        "localsubjectaccessreviews.authorization.k8s.io",
    ] {
        assert!(resources.lines().any(|l| l == resource), "{resource} missing from {resources}");
    }
}

#[test]
fn review_apis_reveal_nothing_of_other_tenants() {
    let _tree = tree::reading();
    let canopy = canopy();
    let bob = as_user(&canopy, "bob");
    let (name, token) = account("globex-main");

    // Another tenant's service account token: not valid in this view, and not named.
    let answer = create(&bob, None, &token_review(&token));
    assert_eq!(answer["status"]["authenticated"], false);
    assert!(!answer["status"].to_string().contains("globex"), "{answer}");

    // Questions about another tenant's namespace or subject are not allowed, whatever upstream
    // would say, and name nothing of it.
    let physical_subject = format!("system:serviceaccount:globex-main:{name}");
    let direct = create(admin_kubeconfig(), None, &access(&physical_subject, "globex-main", "get"));
    assert_eq!(direct["status"]["allowed"], true);
    for (subject, namespace) in [
        (physical_subject.as_str(), "dev"),
        ("system:serviceaccount:main:x", "dev"),
        ("alice", "main"),
        ("alice", "globex-main"),
    ] {
        let answer = create(&bob, None, &access(subject, namespace, "get"));
        assert_eq!(answer["status"]["allowed"], false, "{subject} in {namespace}: {answer}");
        // Canopy's refusal: upstream was not asked, and names only what the caller wrote.
        let status = answer["status"].to_string();
        assert!(status.contains("Canopy") && !status.contains("RBAC"), "{answer}");
        assert!(!status.contains("globex") || format!("{subject}{namespace}").contains("globex"), "{answer}");
    }
    // A LocalSubjectAccessReview in another tenant's namespace: as if it did not exist.
    let mut local = access("alice", "main", "get");
    local["kind"] = "LocalSubjectAccessReview".into();
    let refused = fails(kubectl_stdin(
        kubectl_bin(),
        &bob,
        &["create", "--validate=false", "-n", "main", "-f", "-"],
        Some(&local.to_string()),
    ));
    assert!(refused.contains("NotFound") || refused.contains("not found"), "{refused}");
}
