//! Streaming endpoints through Canopy against the real apiserver and the harness's fake kubelet:
//! logs, exec (SPDY and WebSocket, stdin, exit codes), attach and port-forward.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;

/// A namespace with one running pod named `p`, created through Canopy.
fn running_pod(harness: &Harness, bin: &Path, kubeconfig: &Path) -> String {
    let ns = unique("stream");
    ok(kubectl(bin, kubeconfig, &["create", "namespace", &ns]));
    ok(kubectl(bin, kubeconfig, &["-n", &ns, "run", "p", "--image=registry.invalid/idle", "--restart=Never"]));
    eventually(Duration::from_secs(30), "pod p Running", || {
        let phase = kubectl(bin, kubeconfig, &["-n", &ns, "get", "pod", "p", "-o", "jsonpath={.status.phase}"]);
        String::from_utf8_lossy(&phase.stdout) == "Running"
    });
    let _ = harness;
    ns
}

/// Environment that makes kubectl use SPDY or WebSocket for remote commands and port-forward.
fn protocols() -> [(&'static str, [(&'static str, &'static str); 2]); 2] {
    [
        ("spdy", [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false"), ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")]),
        ("websocket", [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "true"), ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "true")]),
    ]
}

struct Setup {
    _canopy: Canopy,
    kubeconfig: PathBuf,
    kubectls: Vec<PathBuf>,
}

/// Streams, upgrades and watches through Canopy on one thread (`workerThreads: 1`), where a task
/// that blocked would stall every other.
fn setup() -> Setup {
    let harness = Harness::shared();
    let canopy = Canopy::start_with(harness, Options { worker_threads: Some(1), ..Options::default() });
    let kubeconfig = canopy.kubeconfig("admin", harness.token("admin"));
    Setup { kubectls: harness.kubectls(), _canopy: canopy, kubeconfig }
}

#[test]
fn logs_through_canopy() {
    let s = setup();
    for bin in &s.kubectls {
        let ns = running_pod(Harness::shared(), bin, &s.kubeconfig);
        let logs = ok(kubectl(bin, &s.kubeconfig, &["-n", &ns, "logs", "p"]));
        assert!(logs.contains(&format!("container p of pod {ns}/p started")), "{logs}");
    }
}

#[test]
fn exec_over_spdy_and_websocket() {
    let s = setup();
    for bin in &s.kubectls {
        let ns = running_pod(Harness::shared(), bin, &s.kubeconfig);
        for (protocol, env) in protocols() {
            let out = ok(kubectl_env(bin, &s.kubeconfig, &env, &["-n", &ns, "exec", "p", "--", "echo", "hi"], None));
            assert_eq!(out, "hi\n", "{protocol}");
            let out = ok(kubectl_env(
                bin,
                &s.kubeconfig,
                &env,
                &["-n", &ns, "exec", "-i", "p", "--", "cat"],
                Some("from stdin"),
            ));
            assert_eq!(out, "from stdin", "{protocol}");
            let failed = kubectl_env(
                bin,
                &s.kubeconfig,
                &env,
                &["-n", &ns, "exec", "p", "--", "sh", "-c", "echo err >&2; exit 3"],
                None,
            );
            assert_eq!(failed.status.code(), Some(3), "{protocol}: {failed:?}");
            assert!(String::from_utf8_lossy(&failed.stderr).contains("err"), "{protocol}: {failed:?}");
        }
    }
}

#[test]
fn attach_echoes_through_canopy() {
    let s = setup();
    for bin in &s.kubectls {
        let ns = running_pod(Harness::shared(), bin, &s.kubeconfig);
        for (protocol, env) in protocols() {
            let out = kubectl_env(
                bin,
                &s.kubeconfig,
                &env,
                &["-n", &ns, "attach", "-i", "p", "-c", "p"],
                Some("hello attach\n"),
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("hello attach"), "{protocol}: {out:?}");
        }
    }
}

#[test]
fn port_forward_over_spdy_and_websocket() {
    let s = setup();
    // The fake kubelet dials the pod's port on loopback: serve something there.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote_port = target.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in target.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                if let Ok(n) = conn.read(&mut buf) {
                    let _ = conn.write_all(&[b"pong:", &buf[..n]].concat());
                }
            });
        }
    });
    for bin in &s.kubectls {
        let ns = running_pod(Harness::shared(), bin, &s.kubeconfig);
        for (protocol, env) in protocols() {
            // kubectl picks its own local port and prints it, so no other process can take it first.
            let mut forward = Command::new(bin)
                .arg("--kubeconfig")
                .arg(&s.kubeconfig)
                .args(["-n", &ns, "port-forward", "pod/p", &format!(":{remote_port}")])
                .envs(env.iter().copied())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let local_port = forwarded_port(forward.stdout.take().unwrap())
                .unwrap_or_else(|| panic!("{protocol}: kubectl port-forward printed no local port"));
            let reply = port_forward_reply(local_port);
            let _ = forward.kill();
            let _ = forward.wait();
            assert_eq!(reply, "pong:ping", "{protocol}");
        }
    }
}

/// The IPv4 port `kubectl port-forward` reports listening on ("Forwarding from 127.0.0.1:N -> M").
/// Its output is drained to the end afterwards, so kubectl never blocks on a full pipe.
fn forwarded_port(stdout: ChildStdout) -> Option<u16> {
    let (found, port) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                let _ = found.send(rest.split(' ').next().and_then(|p| p.parse().ok()));
            }
        }
    });
    port.recv_timeout(Duration::from_secs(30)).ok().flatten()
}
