//! Sidecar mode end to end: `canopy sidecar` on plain loopback HTTP acting as its token file's
//! identity or as the end user a frontend names in `X-Remote-*` headers, with the example tree;
//! front-proxy headers on `canopy serve` accepted from a trusted client certificate only; kubectl
//! and the example frontend script as clients.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::tenants::{self, kubectl_bin, lines};
use crate::common::*;

fn example_tree() -> Options {
    Options { example_tree: true, ..Default::default() }
}

/// A sidecar with the example tree whose token file holds bob's token, and the `canopy serve`
/// whose reconciler has materialized the tree (kept alive with it).
fn sidecar_as_bob() -> (Canopy, Canopy) {
    let serve = tenants::canopy();
    let harness = Harness::shared();
    (serve, Canopy::start_sidecar(harness, example_tree(), harness.token("bob")))
}

/// GET `path` with extra headers: (code, JSON body).
async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let code = response.status().as_u16();
    let text = response.text().await.unwrap();
    (code, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// Waits for an audit line that satisfies `matches` (the audit writer is its own thread).
fn audited(canopy: &Canopy, what: &str, matches: impl Fn(&serde_json::Value) -> bool) {
    eventually(Duration::from_secs(5), what, || canopy.audit().iter().any(&matches));
}

/// Sorted `metadata.name`s of a list.
fn names(list: &serde_json::Value) -> Vec<String> {
    let items = list["items"].as_array().unwrap_or_else(|| panic!("not a list: {list}"));
    let mut names: Vec<String> = items.iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

/// Namespace names `headers` see through the sidecar.
async fn namespaces(sidecar: &Canopy, headers: &[(&str, &str)]) -> Vec<String> {
    let (code, body) = get(&reqwest::Client::new(), &format!("{}/api/v1/namespaces", sidecar.url), headers).await;
    assert_eq!(code, 200, "{body}");
    names(&body)
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_headers_act_as_the_token_file() {
    let _tree = tree::reading();
    let (_serve, sidecar) = sidecar_as_bob();
    assert_eq!(namespaces(&sidecar, &[]).await, ["dev", "prod"]);
    let (code, body) =
        get(&reqwest::Client::new(), &format!("{}/v/acme/web/api/v1/namespaces/dev/configmaps", sidecar.url), &[])
            .await;
    assert_eq!(code, 200, "{body}");
    audited(&sidecar, "bob's audit line", |line| line["user"] == "bob" && line["code"] == 200);
    // A token the client sends is its identity (carol's view), and a bad one is refused rather
    // than replaced by the token file's. (kubectl sends no credentials over plain HTTP.)
    let carol = format!("Bearer {}", Harness::shared().token("carol"));
    assert_eq!(namespaces(&sidecar, &[("Authorization", &carol)]).await, ["warehouse"]);
    let url = format!("{}/api/v1/namespaces", sidecar.url);
    let (code, body) = get(&reqwest::Client::new(), &url, &[("Authorization", "Bearer not-a-token")]).await;
    assert_eq!(code, 401, "{body}");
    let (code, metrics) = sidecar.admin_get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("canopy_requests_total{verb=\"list\",code=\"200\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn front_proxy_headers_name_the_end_user() {
    let _tree = tree::reading();
    let (_serve, sidecar) = sidecar_as_bob();
    assert_eq!(namespaces(&sidecar, &[("X-Remote-User", "dave")]).await, ["main"]);
    assert_eq!(namespaces(&sidecar, &[("X-Remote-User", "carol")]).await, ["warehouse"]);
    // alice's home is acme; the view prefix narrows her to acme/web, with names relative to it.
    assert_eq!(namespaces(&sidecar, &[("X-Remote-User", "alice")]).await, ["data-warehouse", "web-dev", "web-prod"]);
    let (code, body) = get(
        &reqwest::Client::new(),
        &format!("{}/v/acme/web/api/v1/namespaces", sidecar.url),
        &[("X-Remote-User", "alice")],
    )
    .await;
    assert_eq!((code, names(&body)), (200, vec!["dev".to_owned(), "prod".to_owned()]));
    // dave may not see bob's namespace, though the pod's token could.
    let (code, body) = get(
        &reqwest::Client::new(),
        &format!("{}/api/v1/namespaces/dev/configmaps", sidecar.url),
        &[("X-Remote-User", "dave")],
    )
    .await;
    assert_eq!(code, 404, "{body}");
    audited(&sidecar, "dave's audit line", |line| line["user"] == "dave");

    // Half an identity is refused, not completed with the pod's.
    let url = format!("{}/api/v1/namespaces", sidecar.url);
    let (code, body) = get(&reqwest::Client::new(), &url, &[("X-Remote-Group", "system:masters")]).await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")), "{body}");
    // Headers the sidecar does not understand are refused like any identity header.
    let (code, body) = get(&reqwest::Client::new(), &url, &[("X-Remote-User", "dave"), ("X-Remote-Uid", "0")]).await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = get(&reqwest::Client::new(), &url, &[("Impersonate-User", "dave")]).await;
    assert_eq!(code, 403, "{body}");
}

/// RBAC has no `userextras/*` wildcard (that rule in the harness's bootstrap matches only an
/// extra literally named `*`), so Canopy may impersonate an extra only with `resources: ["*"]`
/// in `authentication.k8s.io`, as `examples/sidecar/pod.yaml` grants it. Without this a
/// ServiceAccount token, whose TokenReview carries `authentication.kubernetes.io/credential-id`,
/// cannot pass through Canopy at all.
fn allow_impersonating_extras(harness: &Harness) {
    let grant = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: canopy-e2e-impersonate-extras}
rules: [{apiGroups: [authentication.k8s.io], resources: ["*"], verbs: [impersonate]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: canopy-e2e-impersonate-extras}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: canopy-e2e-impersonate-extras}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "canopy:proxies"}]
"#;
    let admin = Path::new(harness.var("ADMIN_KUBECONFIG"));
    ok(kubectl_stdin(kubectl_bin(), admin, &["apply", "-f", "-"], Some(grant)));
}

/// The apiserver's own view of who the sidecar's request ran as (SelfSubjectReview).
async fn who_am_i(sidecar: &Canopy, headers: &[(&str, &str)]) -> serde_json::Value {
    let review = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let mut request =
        reqwest::Client::new().post(format!("{}/apis/authentication.k8s.io/v1/selfsubjectreviews", sidecar.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.json(&review).send().await.unwrap().json().await.unwrap()
}

/// Without a tree every caller is forwarded as themselves, so the apiserver's own view of the
/// identity shows what the headers became.
#[tokio::test(flavor = "multi_thread")]
async fn groups_and_extras_reach_the_apiserver() {
    let harness = Harness::shared();
    allow_impersonating_extras(harness);
    let sidecar = Canopy::start_sidecar(harness, Options::default(), harness.token("bob"));
    let headers = [
        ("X-Remote-User", "heidi"),
        ("X-Remote-Group", "devs"),
        ("X-Remote-Group", "qa"),
        ("X-Remote-Extra-Example.org%2FTeam", "blue"),
    ];
    let mut body = who_am_i(&sidecar, &headers).await;
    // The grant above may take a moment to reach the apiserver's RBAC cache.
    for _ in 0..50 {
        if body["kind"] != "Status" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = who_am_i(&sidecar, &headers).await;
    }
    let user = &body["status"]["userInfo"];
    assert_eq!(user["username"], "heidi", "{body}");
    let groups: Vec<&str> = user["groups"].as_array().unwrap().iter().filter_map(|g| g.as_str()).collect();
    assert!(groups.starts_with(&["devs", "qa"]), "{body}");
    assert_eq!(user["extra"]["example.org/team"], serde_json::json!(["blue"]), "{body}");

    let url = format!("{}/api/v1/namespaces/default/pods", sidecar.url);
    let (code, body) = get(&reqwest::Client::new(), &url, &[("X-Remote-User", "heidi")]).await;
    assert_eq!(code, 403);
    assert!(body["message"].as_str().unwrap().contains("User \"heidi\""), "{body}");
    let headers = [("X-Remote-User", "heidi"), ("X-Remote-Group", "system:masters")];
    assert_eq!(get(&reqwest::Client::new(), &url, &headers).await.0, 200);
}

/// The sidecar's real use: a bound ServiceAccount token (what the kubelet projects into the pod)
/// in the token file, checked by TokenReview and impersonated with its extras.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_token_is_the_pods_identity() {
    let harness = Harness::shared();
    allow_impersonating_extras(harness);
    let admin = Path::new(harness.var("ADMIN_KUBECONFIG"));
    let account = unique("console");
    ok(kubectl(kubectl_bin(), admin, &["-n", "default", "create", "serviceaccount", &account]));
    let token = ok(kubectl(kubectl_bin(), admin, &["-n", "default", "create", "token", &account]));
    let sidecar = Canopy::start_sidecar(harness, Options::default(), token.trim());
    let expected = format!("system:serviceaccount:default:{account}");
    let mut body = who_am_i(&sidecar, &[]).await;
    for _ in 0..50 {
        if body["kind"] != "Status" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = who_am_i(&sidecar, &[]).await;
    }
    let user = &body["status"]["userInfo"];
    assert_eq!(user["username"], expected.as_str(), "{body}");
    assert!(user["extra"]["authentication.kubernetes.io/credential-id"].is_array(), "{body}");
    ok(kubectl(kubectl_bin(), admin, &["-n", "default", "delete", "serviceaccount", &account]));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_takes_front_proxy_headers_from_trusted_certificates_only() {
    let _tree = tree::reading();
    let _materialized = tenants::canopy();
    let harness = Harness::shared();
    let options = Options { client_ca: true, front_proxy_names: vec!["console".into()], ..example_tree() };
    let canopy = Canopy::start_with(harness, options);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&canopy.ca_file).unwrap()).unwrap();
    let with_cert = |cn: &str| {
        let identity = client_identity(harness, cn, None);
        reqwest::Client::builder().add_root_certificate(ca.clone()).identity(identity).build().unwrap()
    };
    let cms = format!("{}/api/v1/namespaces/main/configmaps", canopy.url);
    let forged = unique("forged");
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": forged}});

    // erin (a member nowhere) claims to be dave, with her own token: refused, nothing written.
    let response =
        canopy.http().post(&cms).bearer_auth(harness.token("erin")).header("X-Remote-User", "dave").json(&cm).send();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("x-remote-user"), "{body}");
    // The same from a verified certificate that is not a trusted front proxy.
    let response = with_cert("grace").post(&cms).header("X-Remote-User", "dave").json(&cm).send().await.unwrap();
    assert_eq!(response.status(), 403);
    // Without any credential, authentication fails first.
    let response = canopy.http().post(&cms).header("X-Remote-User", "dave").json(&cm).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let admin = Path::new(harness.var("ADMIN_KUBECONFIG"));
    let absent = kubectl(kubectl_bin(), admin, &["-n", "globex-main", "get", "configmap", &forged]);
    assert!(fails(absent).contains("NotFound"), "a forged request reached the apiserver");
    eventually(Duration::from_secs(5), "both refusals audited", || {
        canopy.audit().iter().filter(|line| line["code"] == 403 && line["method"] == "POST").count() == 2
    });

    // The trusted frontend acts for carol, with carol's view.
    let (code, body) =
        get(&with_cert("console"), &format!("{}/api/v1/namespaces", canopy.url), &[("X-Remote-User", "carol")]).await;
    assert_eq!((code, names(&body)), (200, vec!["warehouse".to_owned()]), "{body}");
    // Without headers the frontend is itself: a member nowhere.
    let (code, _) = get(&with_cert("console"), &format!("{}/api/v1/namespaces", canopy.url), &[]).await;
    assert_ne!(code, 200);
}

/// A kubeconfig with no cluster and no user: kubectl gets the server from `--server`.
fn empty_kubeconfig(sidecar: &Canopy) -> std::path::PathBuf {
    let path = sidecar.dir.path().join("empty.kubeconfig");
    std::fs::write(&path, "apiVersion: v1\nkind: Config\n").unwrap();
    path
}

#[test]
fn kubectl_works_through_the_sidecar() {
    let _tree = tree::reading();
    let (_serve, sidecar) = sidecar_as_bob();
    let kubeconfig = empty_kubeconfig(&sidecar);
    let server = ["--server", sidecar.url.as_str()];
    for bin in Harness::shared().kubectls() {
        let run = |args: &[&str]| kubectl(&bin, &kubeconfig, &[&server[..], args].concat());
        assert_eq!(lines(&ok(run(&["get", "ns", "-o", "name"]))), ["namespace/dev", "namespace/prod"]);
        let name = unique("sidecar");
        ok(run(&["-n", "dev", "create", "configmap", &name, "--from-literal=k=v"]));
        assert!(ok(run(&["-n", "dev", "get", "cm"])).contains(&name));
        ok(run(&["-n", "dev", "delete", "cm", &name]));

        // Upgrades (exec) over plain HTTP, both protocols kubectl speaks.
        ok(run(&["-n", "dev", "run", &name, "--image=registry.invalid/idle", "--restart=Never"]));
        eventually(Duration::from_secs(30), "the pod to run", || {
            ok(run(&["-n", "dev", "get", "pod", &name, "-o", "jsonpath={.status.phase}"])) == "Running"
        });
        for websockets in ["false", "true"] {
            let env = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)];
            let exec = ["--server", sidecar.url.as_str(), "-n", "dev", "exec", &name, "--", "echo", "hi"];
            assert_eq!(ok(kubectl_env(&bin, &kubeconfig, &env, &exec, None)), "hi\n", "websockets={websockets}");
        }
        ok(run(&["-n", "dev", "delete", "pod", &name, "--wait=false"]));
    }
}

#[test]
fn frontend_script_runs_against_the_sidecar() {
    let _tree = tree::reading();
    let (_serve, sidecar) = sidecar_as_bob();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sidecar/frontend.py");
    let frontend = |args: &[&str]| {
        Command::new("python3").arg(&script).args(["--sidecar", &sidecar.url]).args(args).output().unwrap()
    };
    assert_eq!(lines(&ok(frontend(&["namespaces"]))), ["dev", "prod"]);
    assert_eq!(lines(&ok(frontend(&["--user", "dave", "namespaces"]))), ["main"]);
    assert_eq!(lines(&ok(frontend(&["--user", "alice", "--view", "acme/web", "namespaces"]))), ["dev", "prod"]);
    ok(frontend(&["configmaps", "dev"]));
    let refused = String::from_utf8_lossy(&frontend(&["--user", "dave", "configmaps", "dev"]).stderr).into_owned();
    assert!(refused.starts_with("NotFound (404)"), "{refused}");
}

#[test]
fn rotated_token_file_is_picked_up() {
    let _tree = tree::reading();
    let (_serve, sidecar) = sidecar_as_bob();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(namespaces(&sidecar, &[])), ["dev", "prod"]);
    std::fs::write(sidecar.dir.path().join("token"), Harness::shared().token("dave")).unwrap();
    eventually(Duration::from_secs(30), "the rotated token to be used", || {
        runtime.block_on(namespaces(&sidecar, &[])) == ["main"]
    });
}

#[test]
fn requests_for_other_hosts_are_refused() {
    use std::io::{Read, Write};
    let _tree = tree::reading();
    let (_serve, sidecar) = sidecar_as_bob();
    let address = sidecar.url.trim_start_matches("http://");
    for (host, code) in [("attacker.invalid", "403"), (address, "200")] {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET /api/v1/namespaces HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert_eq!(response.split(' ').nth(1), Some(code), "{host}: {response}");
    }
}

#[test]
fn sidecar_drains_and_exits_on_sigterm() {
    let harness = Harness::shared();
    let mut sidecar = Canopy::start_sidecar(harness, Options::default(), harness.token("bob"));
    sidecar.terminate();
    let status = sidecar.wait_exit(Duration::from_secs(15)).expect("the sidecar did not exit");
    assert!(status.success(), "{status}: {}", sidecar.log());
}

#[test]
fn a_listen_address_outside_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("canopy.yaml");
    std::fs::write(&config, "sidecar:\n  listen: 0.0.0.0:8001\n").unwrap();
    for command in ["sidecar", "check-config"] {
        let mut canopy = Command::new(env!("CARGO_BIN_EXE_canopy"));
        canopy.arg(command);
        if command == "sidecar" {
            canopy.arg("--config");
        }
        let stderr = fails(canopy.arg(&config).output().unwrap());
        let expected = format!("{}: sidecar.listen: 0.0.0.0:8001 is not a loopback address", config.display());
        assert!(stderr.contains(&expected), "{command}: {stderr}");
    }
}

#[test]
fn example_pod_config_is_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sidecar");
    let text = std::fs::read_to_string(examples.join("pod.yaml")).unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let config_map = documents.iter().find(|d| d["kind"] == "ConfigMap").expect("pod.yaml has the sidecar's ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    for (file, contents) in config_map["data"].as_object().unwrap() {
        std::fs::write(dir.path().join(file), contents.as_str().unwrap()).unwrap();
    }
    let mut check = Command::new(env!("CARGO_BIN_EXE_canopy"));
    ok(check.arg("check-config").arg(dir.path().join("config.yaml")).output().unwrap());
    let pod = documents.iter().find(|d| d["kind"] == "Pod").unwrap();
    assert_eq!(pod["spec"]["initContainers"][0]["command"], serde_json::json!(["/canopy", "sidecar"]));
}
