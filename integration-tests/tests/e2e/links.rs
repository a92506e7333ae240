//! Linked objects against the real apiserver. The reconciler in-process, as Canopy's
//! least-privileged upstream identity and with its own tree domain and lease namespace: a copy
//! in every namespace of the link's subtree (tenant-created ones too), none of the source's
//! metadata, sources' changes followed within a bounded wait, drift repaired, copies removed when
//! the source goes, the link goes or the namespace leaves the subtree, and an object Canopy does
//! not manage left alone. Then a Canopy serving the example tree: tenants read copies naming
//! their source in view terms, and every way kubectl writes (edit, apply, server-side apply,
//! replace, patch, label, delete, create, deletecollection) is refused with 403 and changes
//! nothing; links added and removed by hot reload.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::reconciler::*;
use crate::common::tenants::*;
use crate::common::*;
use canopy::config::raw_tree::RawTree;
use canopy::tree::Tree;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// How long a source change may take to reach its copies.
const PROPAGATION: Duration = Duration::from_secs(10);

fn tree(yaml: &str) -> Arc<Tree> {
    let raw: RawTree = serde_saphyr::from_str(yaml).unwrap();
    Arc::new(Tree::compile(&raw, "tree").unwrap())
}

fn data(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

async fn configmap(admin: &Client, namespace: &str, name: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(admin.clone(), namespace).get_opt(name).await.unwrap()
}

async fn secret(admin: &Client, namespace: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(admin.clone(), namespace).get_opt(name).await.unwrap()
}

/// Whether `namespace` holds a ConfigMap `name` with `value` under key `k`.
async fn holds(admin: &Client, namespace: &str, name: &str, value: &str) -> bool {
    configmap(admin, namespace, name)
        .await
        .is_some_and(|c| c.data.unwrap_or_default().get("k").map(String::as_str) == Some(value))
}

const SUBTREE: &str = r#"
domain: @U@.test
nodes:
  - name: @U@
    namespaces: [shared]
    allow:
      secretTypes: [Opaque, kubernetes.io/dockerconfigjson]
    links:
      - {kind: ConfigMap, namespace: @SRC@, name: ca}
      - {kind: Secret, namespace: @SRC@, name: reg, secretType: kubernetes.io/dockerconfigjson, as: pull}
    children:
      - name: web
        namespaces: [dev, prod]
        aliases: {old: @OLD@}
        links:
          - {kind: ConfigMap, namespace: @U@-shared, name: settings}
      - name: data
        namespaces: [warehouse]
        allow:
          secretTypes: [Opaque]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn copies_follow_their_sources_and_the_tree() {
    let harness = Harness::shared();
    let admin = admin().await;
    let u = unique("lk");
    // The platform's namespace (outside the tree) and a namespace adopted by alias.
    let (src, old) = (admin_namespace(harness, "lksrc"), admin_namespace(harness, "lkold"));
    let yaml = SUBTREE.replace("@U@", &u).replace("@SRC@", &src).replace("@OLD@", &old);
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), &src);
    let post = PostParams::default();
    let owner = cms
        .create(&post, &ConfigMap { metadata: meta("ca-owner"), data: data(&[("k", "o")]), ..Default::default() })
        .await
        .unwrap();
    let mut ca = ConfigMap { metadata: meta("ca"), data: data(&[("k", "v1")]), ..Default::default() };
    ca.metadata.labels = Some(BTreeMap::from([("team".into(), "platform".into())]));
    ca.metadata.annotations = Some(BTreeMap::from([("note".into(), format!("kept in {src}"))]));
    ca.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "ca-owner".into(),
        uid: owner.uid().unwrap(),
        ..OwnerReference::default()
    }]);
    let ca = cms.create(&post, &ca).await.unwrap();
    let registry = Secret {
        metadata: meta("reg"),
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(".dockerconfigjson".into(), ByteString(br#"{"auths":{}}"#.to_vec()))])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), &src).create(&post, &registry).await.unwrap();

    let running = Running::start(tree(&yaml), &admin_namespace(harness, "lease"), "links").await;
    let (shared, dev, prod, warehouse) =
        (format!("{u}-shared"), format!("{u}-web-dev"), format!("{u}-web-prod"), format!("{u}-data-warehouse"));
    within(Duration::from_secs(30), "the shared namespace", || async {
        Api::<Namespace>::all(admin.clone()).get_opt(&shared).await.unwrap().is_some()
    })
    .await;
    let settings = ConfigMap { metadata: meta("settings"), data: data(&[("k", "s1")]), ..Default::default() };
    Api::<ConfigMap>::namespaced(admin.clone(), &shared).create(&post, &settings).await.unwrap();

    // A namespace a tenant created under web (labelled into it by Canopy's proxy).
    let running_tree = running.trees.borrow().clone();
    let web = running_tree.node(&format!("{u}/web")).unwrap();
    let feature = format!("{u}-web-feature");
    let labelled = |name: &str| Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(running_tree.labels(web).for_owned_namespace()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(admin.clone()).create(&post, &labelled(&feature)).await.unwrap();

    // The platform's ConfigMap everywhere below the top node, the ancestor's below web only; the
    // registry secret where its type is allowed; nothing copied onto a source.
    for ns in [&shared, &dev, &prod, &warehouse, &feature, &old] {
        within(Duration::from_secs(30), &format!("ca in {ns}"), || holds(&admin, ns, "ca", "v1")).await;
    }
    for ns in [&dev, &prod, &feature, &old] {
        within(Duration::from_secs(30), &format!("settings in {ns}"), || holds(&admin, ns, "settings", "s1")).await;
        assert!(secret(&admin, ns, "pull").await.is_some(), "pull in {ns}");
    }
    assert!(secret(&admin, &shared, "pull").await.is_some());
    assert!(secret(&admin, &warehouse, "pull").await.is_none(), "acme/data allows Opaque secrets only");
    assert!(configmap(&admin, &warehouse, "settings").await.is_none());
    assert!(
        configmap(&admin, &shared, "settings").await.unwrap().labels().get(&format!("link.{u}.test/source")).is_none()
    );
    assert!(configmap(&admin, &src, "ca").await.unwrap().labels().get("app.kubernetes.io/managed-by").is_none());

    // A copy holds the data and Canopy's metadata, nothing of the source's.
    let copy = configmap(&admin, &dev, "ca").await.unwrap();
    let key = format!("link.{u}.test/source");
    assert_eq!(
        copy.labels(),
        &BTreeMap::from([
            ("app.kubernetes.io/managed-by".to_owned(), "canopy".to_owned()),
            (key.clone(), format!("{src}.ca"))
        ])
    );
    assert_eq!(copy.annotations(), &BTreeMap::from([(key.clone(), format!("{src}/ca"))]));
    assert!(copy.metadata.owner_references.is_none());
    assert_ne!(copy.uid(), ca.uid());
    assert_ne!(copy.resource_version(), ca.resource_version());
    let managers: Vec<String> =
        copy.metadata.managed_fields.iter().flatten().filter_map(|f| f.manager.clone()).collect();
    assert_eq!(managers, ["canopy"], "only Canopy's own managedFields");
    let pull = secret(&admin, &dev, "pull").await.unwrap();
    assert_eq!(pull.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(pull.data, registry.data);

    // A source change reaches every copy within the bound.
    let changed = Instant::now();
    cms.patch("ca", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "v2"}}))).await.unwrap();
    for ns in [&shared, &dev, &prod, &warehouse, &feature, &old] {
        within(PROPAGATION, &format!("v2 in {ns}"), || holds(&admin, ns, "ca", "v2")).await;
    }
    println!("a source change reached all 6 copies in {} ms", changed.elapsed().as_millis());

    // Drift is repaired: an edited copy is put back, a deleted one comes back.
    let prod_cms = Api::<ConfigMap>::namespaced(admin.clone(), &prod);
    prod_cms.patch("ca", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "tampered"}}))).await.unwrap();
    prod_cms.delete("settings", &DeleteParams::default()).await.unwrap();
    within(PROPAGATION, "drift repaired", || async {
        holds(&admin, &prod, "ca", "v2").await && holds(&admin, &prod, "settings", "s1").await
    })
    .await;

    // A source that goes takes its copies with it; back, they are back.
    let shared_cms = Api::<ConfigMap>::namespaced(admin.clone(), &shared);
    shared_cms.delete("settings", &DeleteParams::default()).await.unwrap();
    within(PROPAGATION, "settings copies gone", || async {
        configmap(&admin, &dev, "settings").await.is_none() && configmap(&admin, &feature, "settings").await.is_none()
    })
    .await;
    shared_cms.create(&post, &settings).await.unwrap();
    within(PROPAGATION, "settings copies back", || holds(&admin, &dev, "settings", "s1")).await;

    // An object Canopy does not manage under a link's name is left alone.
    let taken = format!("{u}-web-taken");
    Api::<Namespace>::all(admin.clone())
        .create(&post, &Namespace { metadata: meta(&taken), ..Default::default() })
        .await
        .unwrap();
    let mine = ConfigMap { metadata: meta("ca"), data: data(&[("k", "mine")]), ..Default::default() };
    Api::<ConfigMap>::namespaced(admin.clone(), &taken).create(&post, &mine).await.unwrap();
    let patch = json!({"metadata": {"labels": running_tree.labels(web).for_owned_namespace()}});
    Api::<Namespace>::all(admin.clone()).patch(&taken, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    within(Duration::from_secs(20), "copies in the joining namespace", || holds(&admin, &taken, "settings", "s1"))
        .await;
    assert!(holds(&admin, &taken, "ca", "mine").await);

    // The alias moves to acme/data: its web-only copies go, the top node's stay. Then the
    // settings link leaves the config: its copies go everywhere.
    let moved = yaml.replace(&format!("        aliases: {{old: {old}}}\n"), "").replace(
        "        namespaces: [warehouse]\n",
        &format!("        namespaces: [warehouse]\n        aliases: {{old: {old}}}\n"),
    );
    running.trees.send_replace(tree(&moved));
    within(PROPAGATION, "the moved namespace's web copies gone", || async {
        configmap(&admin, &old, "settings").await.is_none() && secret(&admin, &old, "pull").await.is_none()
    })
    .await;
    assert!(holds(&admin, &old, "ca", "v2").await);
    let unlinked =
        moved.replace(&format!("          - {{kind: ConfigMap, namespace: {u}-shared, name: settings}}\n"), "");
    assert_ne!(unlinked, moved);
    running.trees.send_replace(tree(&unlinked.replace("        links:\n      - name: data", "      - name: data")));
    for ns in [&dev, &prod, &feature] {
        within(PROPAGATION, &format!("settings gone from {ns}"), || async {
            configmap(&admin, ns, "settings").await.is_none()
        })
        .await;
    }
    assert!(holds(&admin, &dev, "ca", "v2").await && holds(&admin, &taken, "ca", "mine").await);
    running.stop().await;
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() }
}

/// The platform admin's kubectl on physical names.
fn as_admin(args: &[&str]) -> String {
    ok(kubectl(kubectl_bin(), Path::new(Harness::shared().var("ADMIN_KUBECONFIG")), args))
}

/// `resourceVersion` and data of a ConfigMap, as the admin sees it upstream.
fn stored(namespace: &str, name: &str) -> String {
    as_admin(&["-n", namespace, "get", "configmap", name, "-o", "jsonpath={.metadata.resourceVersion} {.data}"])
}

fn exists(namespace: &str, kind: &str, name: &str) -> bool {
    let admin = Path::new(Harness::shared().var("ADMIN_KUBECONFIG"));
    kubectl(kubectl_bin(), admin, &["-n", namespace, "get", kind, name]).status.success()
}

/// A refusal of a copy (403, as kubectl prints it) naming the copy's source, no physical name.
fn refused_as_copy(stderr: &str, source: &str) {
    assert!(stderr.contains(&format!("is forbidden: it is a read-only copy of the linked {source}")), "{stderr}");
    assert!(!stderr.contains("acme-"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_read_copies_and_cannot_change_them() {
    let _tree = tree::changing();
    let canopy = canopy();
    let mut cleanup = NamespaceCleanup(Vec::new());
    let bin = kubectl_bin();
    let (bob, alice) = (as_user(&canopy, "bob"), in_view(&canopy, "alice", "acme"));
    // Copies made from here on are this Canopy's: once its reconciler holds the lease (a killed
    // predecessor's lapses after 15 s).
    eventually(Duration::from_secs(60), "the reconciler lease", || {
        canopy.log().contains("holding the reconciler lease")
    });
    // The example links platform/ca-bundle and platform/registry-pull at acme (harness bootstrap).
    eventually(Duration::from_secs(60), "the example's copies", || {
        ["acme-web-dev", "acme-web-prod", "acme-data-warehouse"].iter().all(|ns| exists(ns, "configmap", "ca-bundle"))
            && exists("acme-web-dev", "secret", "registry-pull")
    });
    assert!(!exists("acme-data-warehouse", "secret", "registry-pull"), "acme/data allows Opaque secrets only");
    assert!(!exists("globex-main", "configmap", "ca-bundle"));

    // In a namespace bob creates, copies follow.
    let feature = unique("lkf");
    cleanup.0.push(format!("acme-web-{feature}"));
    ok(kubectl(bin, &bob, &["create", "namespace", &feature]));
    eventually(PROPAGATION, "copies in bob's new namespace", || {
        exists(&format!("acme-web-{feature}"), "configmap", "ca-bundle")
            && exists(&format!("acme-web-{feature}"), "secret", "registry-pull")
    });

    // Tenants read copies with the label naming the source.
    let copy: Value =
        serde_json::from_str(&ok(kubectl(bin, &bob, &["-n", "dev", "get", "cm", "ca-bundle", "-o", "json"]))).unwrap();
    assert_eq!(copy["metadata"]["namespace"], "dev");
    assert_eq!(copy["metadata"]["labels"]["link.canopy.dev/source"], "platform.ca-bundle");
    assert_eq!(copy["metadata"]["labels"]["app.kubernetes.io/managed-by"], "canopy");
    assert_eq!(copy["metadata"]["annotations"]["link.canopy.dev/source"], "platform/ca-bundle");
    let listed =
        ok(kubectl(bin, &bob, &["get", "cm", "-A", "-l", "link.canopy.dev/source=platform.ca-bundle", "-o", "name"]));
    assert_eq!(lines(&listed).iter().filter(|l| *l == "configmap/ca-bundle").count(), 3, "{listed}");

    // Every way kubectl writes is refused with 403, and the copy stays as it was.
    let before = stored("acme-web-dev", "ca-bundle");
    let registry_version = || {
        as_admin(&[
            "-n",
            "acme-web-dev",
            "get",
            "secret",
            "registry-pull",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
    };
    let secret_before = registry_version();
    let editor = canopy.dir.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/^data:$/data:\\n  edited: \"yes\"/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let edit = kubectl_env(
        bin,
        &bob,
        &[("KUBE_EDITOR", editor.to_str().unwrap())],
        &["-n", "dev", "edit", "cm", "ca-bundle"],
        None,
    );
    refused_as_copy(&fails(edit), "ConfigMap platform/ca-bundle");
    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ca-bundle\n  namespace: dev\ndata:\n  ca.crt: mine\n";
    for args in [
        vec!["apply", "-f", "-"],
        vec!["apply", "--server-side", "-f", "-"],
        vec!["apply", "--server-side", "--force-conflicts", "-f", "-"],
        vec!["replace", "-f", "-"],
    ] {
        refused_as_copy(&fails(kubectl_stdin(bin, &bob, &args, Some(manifest))), "ConfigMap platform/ca-bundle");
    }
    for args in [
        vec!["-n", "dev", "patch", "cm", "ca-bundle", "-p", r#"{"data":{"ca.crt":"mine"}}"#],
        vec!["-n", "dev", "patch", "cm", "ca-bundle", "--type", "json", "-p", r#"[{"op":"remove","path":"/data"}]"#],
        vec!["-n", "dev", "label", "cm", "ca-bundle", "link.canopy.dev/source-"],
        vec!["-n", "dev", "annotate", "cm", "ca-bundle", "x=y"],
        vec!["-n", "dev", "delete", "cm", "ca-bundle"],
    ] {
        refused_as_copy(&fails(kubectl(bin, &bob, &args)), "ConfigMap platform/ca-bundle");
    }
    refused_as_copy(
        &fails(kubectl(bin, &bob, &["-n", "dev", "delete", "secret", "registry-pull"])),
        "Secret platform/registry-pull",
    );
    refused_as_copy(
        &fails(kubectl(bin, &alice, &["-n", "web-dev", "delete", "cm", "ca-bundle"])),
        "ConfigMap platform/ca-bundle",
    );
    // Not even under a copy's name where it does not exist yet.
    let taken = fails(kubectl(bin, &bob, &["-n", "dev", "create", "configmap", "ca-bundle", "--from-literal=a=b"]));
    assert!(taken.contains("is forbidden: the name is reserved in namespace \"dev\""), "{taken}");
    // A collection delete that would reach a copy is refused; one that would not, goes, sparing copies.
    // Both exclude what the example tree protects by label (`tree.nodes[0].deny[1]`), which
    // refuses any collection delete that could reach it.
    let http = canopy.http();
    let token = Harness::shared().token("bob");
    let unprotected = "labelSelector=platform.canopy.dev%2Fprotected%21%3Dtrue";
    let all = http
        .delete(format!("{}/api/v1/namespaces/dev/configmaps?{unprotected}", canopy.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 403);
    let status: Value = all.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert!(status["message"].as_str().unwrap().contains("read-only copy of the linked"), "{status}");
    let mine = unique("mine");
    ok(kubectl(bin, &bob, &["-n", "dev", "create", "configmap", &mine]));
    ok(kubectl(bin, &bob, &["-n", "dev", "label", "cm", &mine, "lk=x"]));
    let url = format!("{}/api/v1/namespaces/dev/configmaps?{unprotected}%2Clk%3Dx", canopy.url);
    let some = http.delete(url).bearer_auth(token).send().await.unwrap();
    assert!(some.status().is_success(), "{:?}", some.text().await);
    assert!(!exists("acme-web-dev", "configmap", &mine));
    assert_eq!(stored("acme-web-dev", "ca-bundle"), before, "the copy is unchanged");
    assert_eq!(registry_version(), secret_before);
    // kubectl auth can-i agrees.
    let can_i = |args: &[&str]| String::from_utf8_lossy(&kubectl(bin, &bob, args).stdout).trim().to_owned();
    assert_eq!(
        can_i(&["auth", "can-i", "update", "configmap/ca-bundle", "-n", "dev"]),
        "no - Canopy: configmaps \"ca-bundle\" is a read-only copy of the linked ConfigMap platform/ca-bundle"
    );
    assert_eq!(can_i(&["auth", "can-i", "update", "configmap/other", "-n", "dev"]), "yes");

    // Hot reload adds links: a new platform source, and one in a namespace alice created at
    // acme, linked at acme/web — outside bob's view, so its namespace is not shown to him.
    let source = unique("lksrc");
    as_admin(&["-n", "platform", "create", "configmap", &source, "--from-literal=k=v1"]);
    let shared = unique("lks");
    cleanup.0.push(format!("acme-{shared}"));
    ok(kubectl(bin, &alice, &["create", "namespace", &shared]));
    eventually(Duration::from_secs(20), "alice's RoleBinding in her namespace", || {
        kubectl(bin, &alice, &["-n", &shared, "create", "configmap", "settings", "--from-literal=k=s1"])
            .status
            .success()
    });
    let original = std::fs::read_to_string(&canopy.config).unwrap();
    let platform_link = "        - {kind: ConfigMap, namespace: platform, name: ca-bundle}\n";
    let linked = original
        .replace(
            platform_link,
            &format!("{platform_link}        - {{kind: ConfigMap, namespace: platform, name: {source}, as: {source}-copy}}\n"),
        )
        .replace(
            "          namespaces: [dev, prod]\n",
            &format!("          namespaces: [dev, prod]\n          links: [{{kind: ConfigMap, namespace: acme-{shared}, name: settings, as: shared-settings}}]\n"),
        );
    assert_ne!(linked, original);
    std::fs::write(&canopy.config, &linked).unwrap();
    let copy_name = format!("{source}-copy");
    eventually(Duration::from_secs(20), "the reloaded links' copies", || {
        ["acme-web-dev", "acme-web-prod", "acme-data-warehouse"].iter().all(|ns| exists(ns, "configmap", &copy_name))
            && exists("acme-web-dev", "configmap", "shared-settings")
            && exists("acme-web-prod", "configmap", "shared-settings")
    });
    assert!(!exists("acme-data-warehouse", "configmap", "shared-settings"), "linked at acme/web only");

    // The ancestor's source, as each view sees it.
    let get = |kubeconfig: &Path, ns: &str| -> Value {
        serde_json::from_str(&ok(kubectl(bin, kubeconfig, &["-n", ns, "get", "cm", "shared-settings", "-o", "json"])))
            .unwrap()
    };
    let seen_by_bob = get(&bob, "dev");
    assert_eq!(seen_by_bob["metadata"]["annotations"]["link.canopy.dev/source"], "settings");
    assert_eq!(seen_by_bob["metadata"]["labels"]["link.canopy.dev/source"], "settings");
    assert!(!seen_by_bob.to_string().contains(&shared), "{seen_by_bob}");
    let seen_by_alice = get(&alice, "web-dev");
    assert_eq!(seen_by_alice["metadata"]["annotations"]["link.canopy.dev/source"], format!("{shared}/settings"));
    assert_eq!(seen_by_alice["metadata"]["labels"]["link.canopy.dev/source"], format!("{shared}.settings"));
    let refused = fails(kubectl(bin, &bob, &["-n", "dev", "delete", "cm", "shared-settings"]));
    refused_as_copy(&refused, "ConfigMap settings");

    // Changes reach the copies within the bound: the platform's, and alice's through Canopy.
    let started = Instant::now();
    as_admin(&["-n", "platform", "patch", "configmap", &source, "-p", r#"{"data":{"k":"v2"}}"#]);
    eventually(PROPAGATION, "the platform source's change in every copy", || {
        ["acme-web-dev", "acme-web-prod", "acme-data-warehouse", &format!("acme-web-{feature}")]
            .iter()
            .all(|ns| as_admin(&["-n", ns, "get", "cm", &copy_name, "-o", "jsonpath={.data.k}"]) == "v2")
    });
    println!("a platform source change reached its copies in {} ms", started.elapsed().as_millis());
    let started = Instant::now();
    ok(kubectl(bin, &alice, &["-n", &shared, "patch", "cm", "settings", "-p", r#"{"data":{"k":"s2"}}"#]));
    eventually(PROPAGATION, "alice's change in bob's copy", || {
        ok(kubectl(bin, &bob, &["-n", "dev", "get", "cm", "shared-settings", "-o", "jsonpath={.data.k}"])) == "s2"
    });
    println!("an ancestor's source change reached its copies in {} ms", started.elapsed().as_millis());

    // Hot reload back to the example: the added links' copies go, the example's stay.
    std::fs::write(&canopy.config, &original).unwrap();
    eventually(Duration::from_secs(20), "the removed links' copies gone", || {
        ["acme-web-dev", "acme-web-prod", "acme-data-warehouse", &format!("acme-web-{feature}")]
            .iter()
            .all(|ns| !exists(ns, "configmap", &copy_name) && !exists(ns, "configmap", "shared-settings"))
    });
    assert_eq!(stored("acme-web-dev", "ca-bundle"), before);
    as_admin(&["-n", "platform", "delete", "configmap", &source]);
}
