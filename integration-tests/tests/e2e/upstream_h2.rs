//! The upstream protocol against the real apiserver: over HTTP/2 (the default) many requests and
//! watches share a few upstream connections and every watch still gets its events; `http1` still
//! works, with a connection per watch; exec and port-forward keep working beside HTTP/2 (they
//! take HTTP/1.1 upgrades). Connections are counted from Canopy's sockets in /proc.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::StreamExt;

/// Established TCP connections of process `pid` to `port` on the peer side.
fn connections_to(pid: u32, port: u16) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|target| Some(target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port =
                fields.get(2).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            // State 01 is ESTABLISHED; field 9 is the socket's inode.
            remote_port == Some(port)
                && fields.get(3) == Some(&"01")
                && fields.get(9).is_some_and(|i| inodes.contains(*i))
        })
        .count()
}

fn apiserver_port(harness: &Harness) -> u16 {
    harness.var("KUBE_SERVER").rsplit(':').next().and_then(|p| p.parse().ok()).expect("KUBE_SERVER has a port")
}

/// Opens `count` watches on configmaps in `ns` through Canopy, creates a configmap directly
/// upstream, and returns the upstream connections Canopy held with the watches open and how long
/// each watch took to see the write, once every watch has.
async fn watches_see_a_write(
    harness: &'static Harness,
    canopy: &Canopy,
    ns: &str,
    count: usize,
) -> (usize, Vec<Duration>) {
    let http = canopy.http();
    let url = format!("{}/api/v1/namespaces/{ns}/configmaps?watch=1", canopy.url);
    let name = unique("seen");
    let mut watches = Vec::new();
    for _ in 0..count {
        let response = http.get(&url).bearer_auth(harness.token("admin")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        watches.push(response);
    }
    // Plain requests beside the open watches, over the same upstream connections.
    for _ in 0..20 {
        let response = http.get(format!("{}/api/v1/namespaces/{ns}", canopy.url)).bearer_auth(harness.token("admin"));
        assert_eq!(response.send().await.unwrap().status(), 200);
    }
    let upstream = connections_to(canopy.pid(), apiserver_port(harness));
    println!("figure: {count} open watches and 20 requests held {upstream} upstream connection(s)");
    let written = Instant::now();
    let seen: Vec<_> = watches
        .into_iter()
        .map(|response| {
            let name = name.clone();
            tokio::spawn(async move {
                let mut stream = response.bytes_stream();
                let mut text = Vec::new();
                while let Some(chunk) = stream.next().await {
                    text.extend_from_slice(&chunk.unwrap());
                    if text.windows(name.len()).any(|w| w == name.as_bytes()) {
                        return written.elapsed();
                    }
                }
                panic!("a watch ended before the write reached it");
            })
        })
        .collect();
    let admin = Path::new(harness.var("ADMIN_KUBECONFIG"));
    ok(kubectl(&harness.kubectls()[0], admin, &["-n", ns, "create", "configmap", &name]));
    let mut latencies = Vec::new();
    for task in seen {
        latencies.push(
            tokio::time::timeout(Duration::from_secs(30), task).await.expect("every watch sees the write").unwrap(),
        );
    }
    latencies.sort();
    println!("figure: the write reached all {count} watches, the last after {:?}", latencies.last().unwrap());
    (upstream, latencies)
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_and_requests_share_few_upstream_connections_over_http2() {
    let harness = Harness::shared();
    let ns = admin_namespace(harness, "h2");
    let _cleanup = NamespaceCleanup(vec![ns.clone()]);
    let canopy = Canopy::start_with(harness, Options { worker_threads: Some(2), ..Options::default() });
    // kube-apiserver announces 100 streams per HTTP/2 connection unless told otherwise
    // (--http2-max-streams-per-connection), so 300 watches need 3 connections, or a few more
    // when they spread over both serving threads.
    let watches = 300;
    let (upstream, _) = watches_see_a_write(harness, &canopy, &ns, watches).await;
    // The default (`streams`) sends the 20 requests over a kept-alive HTTP/1.1 connection per
    // serving thread; Canopy's own client (TokenReview, namespaces) may hold one or two more.
    assert!((3..=9).contains(&upstream), "{watches} watches over {upstream} upstream connections");
}

#[tokio::test(flavor = "multi_thread")]
async fn http1_upstream_still_serves_watches_a_connection_each() {
    let harness = Harness::shared();
    let ns = admin_namespace(harness, "h1");
    let _cleanup = NamespaceCleanup(vec![ns.clone()]);
    let options = Options { worker_threads: Some(1), upstream_protocol: Some("http1"), ..Options::default() };
    let canopy = Canopy::start_with(harness, options);
    let watches = 20;
    let (upstream, _) = watches_see_a_write(harness, &canopy, &ns, watches).await;
    assert!(upstream >= watches, "{watches} watches over HTTP/1.1 held only {upstream} upstream connections");
}

/// kubectl exec and port-forward, over SPDY and WebSocket, through a Canopy whose upstream is
/// HTTP/2 and busy with watches: the upgrades take HTTP/1.1 beside it.
#[tokio::test(flavor = "multi_thread")]
async fn exec_and_port_forward_work_beside_an_http2_upstream() {
    let harness = Harness::shared();
    let options = Options { worker_threads: Some(1), upstream_protocol: Some("http2"), ..Options::default() };
    let canopy = Canopy::start_with(harness, options);
    let kubeconfig = canopy.kubeconfig("admin", harness.token("admin"));
    let bin = harness.kubectls().remove(0);
    let ns = unique("h2-stream");
    let _cleanup = NamespaceCleanup(vec![ns.clone()]);
    ok(kubectl(&bin, &kubeconfig, &["create", "namespace", &ns]));
    ok(kubectl(&bin, &kubeconfig, &["-n", &ns, "run", "p", "--image=registry.invalid/idle", "--restart=Never"]));
    eventually(Duration::from_secs(30), "pod p Running", || {
        let phase = kubectl(&bin, &kubeconfig, &["-n", &ns, "get", "pod", "p", "-o", "jsonpath={.status.phase}"]);
        String::from_utf8_lossy(&phase.stdout) == "Running"
    });
    // Watches keep the HTTP/2 connection busy while the upgrades run.
    let http = canopy.http();
    let mut watches = Vec::new();
    for _ in 0..20 {
        let url = format!("{}/api/v1/namespaces/{ns}/pods?watch=1", canopy.url);
        watches.push(http.get(url).bearer_auth(harness.token("admin")).send().await.unwrap());
    }
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote_port = target.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in target.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 64];
            if let Ok(n) = conn.read(&mut buf) {
                let _ = conn.write_all(&[b"pong:", &buf[..n]].concat());
            }
        }
    });
    for websockets in ["false", "true"] {
        let env = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets), ("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)];
        let out = ok(kubectl_env(&bin, &kubeconfig, &env, &["-n", &ns, "exec", "-i", "p", "--", "cat"], Some("hi")));
        assert_eq!(out, "hi", "websockets={websockets}");
        let mut forward = Command::new(&bin)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["-n", &ns, "port-forward", "pod/p", &format!(":{remote_port}")])
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Drained to the end, so kubectl never meets a closed pipe when it logs a connection.
        let stdout = BufReader::new(forward.stdout.take().unwrap());
        let (found, port) = std::sync::mpsc::channel::<u16>();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(port) =
                    line.strip_prefix("Forwarding from 127.0.0.1:").and_then(|r| r.split(' ').next()?.parse().ok())
                {
                    let _ = found.send(port);
                }
            }
        });
        let local_port =
            port.recv_timeout(Duration::from_secs(30)).expect("kubectl port-forward prints its local port");
        let reply = port_forward_reply(local_port);
        let _ = forward.kill();
        let _ = forward.wait();
        assert_eq!(reply, "pong:ping", "websockets={websockets}");
    }
    drop(watches);
}

/// Canopy's own watches (the tree's reconciler, the live namespace index, revocation) go over
/// the multiplexed upstream connections as tenants' do, not one HTTP/1.1 connection each.
#[test]
fn canopys_own_watches_share_the_multiplexed_upstream_connections() {
    let _tree = tree::reading();
    let harness = Harness::shared();
    let canopy = tenants::canopy();
    std::thread::sleep(Duration::from_secs(3));
    let upstream = connections_to(canopy.pid(), apiserver_port(harness));
    println!("figure: Canopy with the example tree, materialized and idle, holds {upstream} upstream connection(s)");
    assert!((1..=4).contains(&upstream), "Canopy's own watches hold {upstream} upstream connections");
}
