//! The reconciler in-process against the real apiserver, as Canopy's least-privileged upstream
//! identity (so its RBAC is exercised): namespaces with their labels, members' RoleBindings across
//! their subtree, clean-up of removed members and nothing else, drift repair, and one writer among
//! replicas. Each test has its own tree domain and lease namespace, so tests never touch each
//! other's objects.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::reconciler::*;
use crate::common::*;
use canopy::config::raw_tree::RawTree;
use canopy::reconcile::LEASE_NAME;
use canopy::tree::Tree;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

/// A tree from YAML whose `@U@` is replaced by a name unique to this run.
fn tree(yaml: &str, u: &str) -> Arc<Tree> {
    let raw: RawTree = serde_saphyr::from_str(&yaml.replace("@U@", u)).unwrap();
    Arc::new(Tree::compile(&raw, "tree").unwrap())
}

/// Polls `check` until it holds, at most 20 s.
async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(Duration::from_secs(20), what, check).await;
}

async fn bindings(admin: &Client, namespace: &str) -> BTreeSet<String> {
    let api: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    api.list(&ListParams::default()).await.map(|l| l.items.iter().map(|b| b.name_any()).collect()).unwrap_or_default()
}

async fn labels(admin: &Client, namespace: &str) -> Option<BTreeMap<String, String>> {
    let api: Api<Namespace> = Api::all(admin.clone());
    api.get_opt(namespace).await.unwrap().map(|ns| ns.labels().clone())
}

async fn lease_holder(admin: &Client, namespace: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(admin.clone(), namespace);
    api.get_opt(LEASE_NAME).await.unwrap().and_then(|l| l.spec).and_then(|s| s.holder_identity)
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `kubectl auth can-i` as the harness admin impersonating `as_args`.
fn can_i(as_args: &[&str], verb: &str, resource: &str, namespace: &str) -> bool {
    let harness = Harness::shared();
    let mut args = vec!["auth", "can-i", verb, resource, "-n", namespace];
    args.extend_from_slice(as_args);
    let output = kubectl(Path::new(harness.var("KUBECTL")), Path::new(harness.var("ADMIN_KUBECONFIG")), &args);
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(answer == "yes" || answer == "no", "can-i {args:?}: {answer} {}", String::from_utf8_lossy(&output.stderr));
    answer == "yes"
}

const SUBTREE: &str = r#"
domain: @U@.test
roles:
  r@U@:
    rules: [{resources: [pods], verbs: [get, list]}]
nodes:
  - name: @U@
    namespaces: [main]
    members:
      - {kind: User, name: alice, role: admin}
      - {kind: ServiceAccount, name: deployer, namespace: main, role: edit}
    children:
      - name: web
        namespaces: [dev]
        members:
          - {kind: User, name: bob, role: edit}
          - {kind: Group, name: @U@-readers, role: r@U@}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn members_are_bound_in_every_namespace_of_their_subtree() {
    let harness = Harness::shared();
    let admin = admin().await;
    let u = unique("rc");
    let tree = tree(SUBTREE, &u);
    let running = Running::start(tree.clone(), &admin_namespace(harness, "lease"), "solo").await;
    let (main, dev) = (format!("{u}-main"), format!("{u}-web-dev"));
    let web = tree.node(&format!("{u}/web")).unwrap();

    for (ns, node) in [(&main, tree.node(&u).unwrap()), (&dev, web)] {
        let want = tree.labels(node).for_owned_namespace();
        until(&format!("namespace {ns} with its labels"), || async {
            labels(&admin, ns).await.is_some_and(|have| want.iter().all(|(k, v)| have.get(k) == Some(v)))
        })
        .await;
    }
    let (alice, sa) = ("canopy:admin:user:alice", format!("canopy:edit:sa:{main}:deployer"));
    let (bob, readers) = ("canopy:edit:user:bob", format!("canopy:r{u}:group:{u}-readers"));
    until("bindings in main", || async { bindings(&admin, &main).await == names(&[alice, &sa]) }).await;
    until("bindings in dev", || async { bindings(&admin, &dev).await == names(&[alice, &sa, bob, &readers]) }).await;

    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let role = roles.get(&format!("canopy:role:r{u}")).await.unwrap();
    assert_eq!(role.labels()["app.kubernetes.io/managed-by"], "canopy");
    let binding = Api::<RoleBinding>::namespaced(admin.clone(), &dev).get(&sa).await.unwrap();
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!((subject.kind.as_str(), subject.namespace.as_deref()), ("ServiceAccount", Some(main.as_str())));

    // A namespace a tenant created below web (labelled by Canopy's proxy) gets the bindings too.
    let feature = format!("{u}-web-feature");
    let created = Namespace {
        metadata: ObjectMeta {
            name: Some(feature.clone()),
            labels: Some(tree.labels(web).for_owned_namespace()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &created).await.unwrap();
    until("bindings in a labelled namespace", || async {
        bindings(&admin, &feature).await == names(&[alice, &sa, bob, &readers])
    })
    .await;

    // The bindings grant what the roles say, upstream. admin/edit/view are aggregated roles.
    let builtin = roles.get("admin").await.unwrap();
    assert!(
        builtin.rules.is_some_and(|r| !r.is_empty()),
        "ClusterRole admin has no rules: the harness must run clusterrole-aggregation-controller"
    );
    let group = format!("{u}-readers");
    let service_account = format!("system:serviceaccount:{main}:deployer");
    assert!(can_i(&["--as", "alice"], "create", "deployments.apps", &dev));
    assert!(can_i(&["--as", "alice"], "delete", "secrets", &main));
    assert!(can_i(&["--as", "bob"], "create", "deployments.apps", &dev));
    assert!(!can_i(&["--as", "bob"], "create", "deployments.apps", &main));
    assert!(can_i(&["--as", "someone", "--as-group", &group], "get", "pods", &feature));
    assert!(!can_i(&["--as", "someone", "--as-group", &group], "delete", "pods", &dev));
    assert!(!can_i(&["--as", "someone", "--as-group", &group], "get", "pods", &main));
    assert!(can_i(&["--as", &service_account], "create", "configmaps", &dev));
    assert!(!can_i(&["--as", "nobody"], "get", "pods", &dev));
    running.stop().await;
}

const MEMBERS: &str = r#"
domain: @U@.test
roles:
  r@U@:
    rules: [{resources: [configmaps], verbs: [get]}]
nodes:
  - name: @U@
    namespaces: [main, old]
    members:
      - {kind: User, name: alice, role: admin}
      - {kind: User, name: bob, role: edit}
      - {kind: User, name: carol, role: r@U@}
    children:
      - name: web
        namespaces: [dev]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn removed_members_lose_their_bindings_and_nothing_else_is_touched() {
    let harness = Harness::shared();
    let admin = admin().await;
    let u = unique("rc");
    let running = Running::start(tree(MEMBERS, &u), &admin_namespace(harness, "lease"), "solo").await;
    let (main, dev, old) = (format!("{u}-main"), format!("{u}-web-dev"), format!("{u}-old"));
    let carol = format!("canopy:r{u}:user:carol");
    let all = names(&["canopy:admin:user:alice", "canopy:edit:user:bob", &carol]);
    for ns in [&main, &dev, &old] {
        until(&format!("bindings in {ns}"), || async { bindings(&admin, ns).await == all }).await;
    }

    // Bindings without Canopy's label, one even named like Canopy's, are not Canopy's.
    let rbs: Api<RoleBinding> = Api::namespaced(admin.clone(), &main);
    for name in ["keep-me", "canopy:view:user:zed"] {
        let foreign = RoleBinding {
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: "view".into(),
            },
            subjects: Some(vec![Subject {
                kind: "User".into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                name: "zed".into(),
                namespace: None,
            }]),
        };
        rbs.create(&PostParams::default(), &foreign).await.unwrap();
    }

    // A tenant namespace joining the subtree where Canopy's name for bob is already taken.
    let taken = format!("{u}-web-taken");
    let namespace = Namespace {
        metadata: ObjectMeta { name: Some(taken.clone()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &namespace).await.unwrap();
    let squatter = RoleBinding {
        metadata: ObjectMeta { name: Some("canopy:edit:user:bob".into()), ..ObjectMeta::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "view".into(),
        },
        subjects: None,
    };
    let taken_rbs: Api<RoleBinding> = Api::namespaced(admin.clone(), &taken);
    taken_rbs.create(&PostParams::default(), &squatter).await.unwrap();
    let web = running.trees.borrow().node(&format!("{u}/web")).unwrap();
    let labels_of_web = running.trees.borrow().labels(web).for_owned_namespace();
    let patch = serde_json::json!({"metadata": {"labels": labels_of_web}});
    Api::<Namespace>::all(admin.clone()).patch(&taken, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    until("bindings in the joining namespace", || async { bindings(&admin, &taken).await == all }).await;
    let squatter = taken_rbs.get("canopy:edit:user:bob").await.unwrap();
    assert_eq!((squatter.role_ref.name.as_str(), squatter.metadata.labels), ("view", None));

    // Drift is repaired: a deleted binding comes back, a stray tree label goes, others stay.
    rbs.delete("canopy:admin:user:alice", &DeleteParams::default()).await.unwrap();
    let stray = format!("elsewhere.tree.{u}.test/depth");
    let patch = serde_json::json!({"metadata": {"labels": {stray.clone(): "0", "team": "x"}}});
    Api::<Namespace>::all(admin.clone()).patch(&main, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    until("drift repaired", || async {
        let labels = labels(&admin, &main).await.unwrap_or_default();
        rbs.get_opt("canopy:admin:user:alice").await.unwrap().is_some()
            && !labels.contains_key(&stray)
            && labels.get("team").map(String::as_str) == Some("x")
    })
    .await;

    // Bob and the custom role leave the tree, and so does the namespace `old`.
    let reduced = MEMBERS.replace("      - {kind: User, name: bob, role: edit}\n", "").replace("[main, old]", "[main]");
    running.trees.send_replace(tree(&reduced, &u));
    let remaining = names(&["canopy:admin:user:alice", &carol]);
    for ns in [&main, &dev] {
        until(&format!("bob's binding gone from {ns}"), || async {
            let have = bindings(&admin, ns).await;
            !have.contains("canopy:edit:user:bob") && remaining.is_subset(&have)
        })
        .await;
    }
    assert!(bindings(&admin, &main).await.is_superset(&names(&["keep-me", "canopy:view:user:zed"])));
    // The namespace is left alone: it holds tenant data.
    assert!(labels(&admin, &old).await.is_some());

    let role = format!("canopy:role:r{u}");
    let without_role = reduced
        .replace("      - {kind: User, name: carol, role: r@U@}\n", "")
        .replace("roles:\n  r@U@:\n    rules: [{resources: [configmaps], verbs: [get]}]\n", "");
    running.trees.send_replace(tree(&without_role, &u));
    until("custom role and its bindings gone", || async {
        Api::<ClusterRole>::all(admin.clone()).get_opt(&role).await.unwrap().is_none()
            && !bindings(&admin, &main).await.contains(&carol)
    })
    .await;
    assert!(rbs.get_opt("keep-me").await.unwrap().is_some());
    assert!(taken_rbs.get_opt("canopy:edit:user:bob").await.unwrap().is_some());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_leads_and_the_other_takes_over() {
    let harness = Harness::shared();
    let admin = admin().await;
    let u = unique("rc");
    let lease = admin_namespace(harness, "lease");
    let tree_v1 = tree(MEMBERS, &u);
    let a = Running::start(tree_v1.clone(), &lease, &format!("{u}-a")).await;
    let b = Running::start(tree_v1, &lease, &format!("{u}-b")).await;
    let main = format!("{u}-main");
    until("bindings from the leader", || async { bindings(&admin, &main).await.contains("canopy:edit:user:bob") })
        .await;
    let first = lease_holder(&admin, &lease).await.expect("a lease holder");
    assert!(first == a.identity || first == b.identity, "{first}");
    // The lease stays with the first holder while it renews.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(lease_holder(&admin, &lease).await.as_deref(), Some(first.as_str()));
    }

    let (leader, follower) = if first == a.identity { (a, b) } else { (b, a) };
    leader.stop().await;
    until("the follower takes the lease", || async {
        lease_holder(&admin, &lease).await.as_deref() == Some(follower.identity.as_str())
    })
    .await;
    let more = MEMBERS.replace("members:\n", "members:\n      - {kind: User, name: dave, role: view}\n");
    follower.trees.send_replace(tree(&more, &u));
    until("the new leader writes", || async { bindings(&admin, &main).await.contains("canopy:view:user:dave") }).await;
    follower.stop().await;
    assert_eq!(lease_holder(&admin, &lease).await, None, "a stopping leader releases the lease");
}
