//! Canopy as a process: admin endpoints and metrics, graceful shutdown with a watch open, and an
//! upstream apiserver killed and restarted under a running watch.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_report_health_and_metrics() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    assert_eq!(canopy.admin_get("/livez").unwrap().0, 200);
    eventually(Duration::from_secs(10), "readyz", || canopy.admin_get("/readyz").map(|r| r.0 == 200).unwrap_or(false));
    let http = canopy.http();
    let response =
        http.get(format!("{}/api/v1/namespaces", canopy.url)).bearer_auth(harness.token("admin")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = http.get(format!("{}/api/v1/namespaces", canopy.url)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let (code, metrics) = canopy.admin_get("/metrics").unwrap();
    assert_eq!(code, 200);
    for expected in [
        "canopy_requests_total{verb=\"list\",code=\"200\"}",
        "canopy_requests_total{verb=\"list\",code=\"401\"}",
        "canopy_request_duration_seconds_bucket{le=",
        "canopy_open_watches",
        "canopy_open_upgrades",
    ] {
        assert!(metrics.contains(expected), "{expected} missing:\n{metrics}");
    }
    assert_eq!(canopy.admin_get("/nope").unwrap().0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_then_closes_open_watches() {
    let harness = Harness::shared();
    let mut canopy = Canopy::start_with(harness, Options { grace_seconds: Some(2), ..Default::default() });
    let http = canopy.http();
    let watch = http
        .get(format!("{}/api/v1/namespaces/default/configmaps?watch=true", canopy.url))
        .bearer_auth(harness.token("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    let mut stream = watch.bytes_stream();
    let started = Instant::now();
    canopy.terminate();
    // The watch ends (grace period over), it does not hang.
    let ended =
        tokio::time::timeout(Duration::from_secs(15), async { while let Some(Ok(_)) = stream.next().await {} }).await;
    assert!(ended.is_ok(), "the watch outlived the grace period");
    let status = canopy.wait_exit(Duration::from_secs(10)).expect("canopy did not exit after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(started.elapsed() >= Duration::from_secs(1), "watch closed before any grace period");
    assert!(canopy.log().contains("grace period over"), "{}", canopy.log());
}

fn script(name: &str, run_dir: &Path) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration-tests").join(name);
    let status = Command::new("bash").arg(path).arg(run_dir).stdout(std::process::Stdio::null()).status().unwrap();
    assert!(status.success(), "{name} {} failed", run_dir.display());
}

/// A harness of this test's own, so stopping it disturbs no other test.
struct PrivateHarness(PathBuf);

impl PrivateHarness {
    fn start() -> (Self, Harness) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/e2e-restart-{}", std::process::id()));
        script("up.sh", &dir);
        let harness = Harness::at(&dir);
        (Self(dir), harness)
    }
}

impl Drop for PrivateHarness {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("integration-tests/down.sh"))
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_restart_mid_watch_is_survived() {
    let (private, harness) = PrivateHarness::start();
    let canopy = Canopy::start(&harness);
    let http = canopy.http();
    let token = harness.token("admin").to_owned();
    let list = format!("{}/api/v1/namespaces/default/configmaps", canopy.url);
    assert_eq!(http.get(&list).bearer_auth(&token).send().await.unwrap().status(), 200);

    let watch = http.get(format!("{list}?watch=true")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(watch.status(), 200);
    let mut stream = watch.bytes_stream();

    script("down.sh", &private.0);
    // The client sees the watch end (cleanly or with an error): it does not hang.
    let ended =
        tokio::time::timeout(Duration::from_secs(20), async { while let Some(Ok(_)) = stream.next().await {} }).await;
    assert!(ended.is_ok(), "the watch hung after the upstream died");

    // Canopy stays up and answers with a Status while the upstream is down.
    assert_eq!(canopy.admin_get("/livez").unwrap().0, 200);
    assert_eq!(canopy.admin_get("/readyz").unwrap().0, 503);
    let response = http.get(&list).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("ServiceUnavailable")),
        "{status}"
    );

    script("up.sh", &private.0);
    let mut recovered = false;
    for _ in 0..100 {
        if http.get(&list).bearer_auth(&token).send().await.map(|r| r.status() == 200).unwrap_or(false) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "canopy did not recover after the upstream came back");
    assert_eq!(canopy.admin_get("/readyz").unwrap().0, 200);
    let watch = http.get(format!("{list}?watch=true&timeoutSeconds=1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(watch.status(), 200);
}
