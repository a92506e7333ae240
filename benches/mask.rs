//! Read masks and namespace-name translation on answers, as a tenant of the example tree gets
//! them: a ~50 MB PodList and the same pods as a watch stream, both in 16 KiB frames, translated
//! into view `acme/web` (physical `acme-web-dev`/`acme-web-prod`) and masked by the example's pod
//! read masks, through the production entry points (`transform::list::translate`,
//! `transform::event::translate_events`).
//!
//! Criterion runs every routine on one thread, so its MB/s (of input) are per core. For
//! comparison the list also goes through the whole-document path (`Translation::apply_bytes`,
//! which still serves single objects), taken apart into its stages (parse, name translation,
//! masks, serialization). After the timings, the bench runs itself once per list size (5 and
//! 50 MB) in a fresh process and reports the peak memory (`VmHWM`) one translation adds, with the
//! CPU time it took (`/proc/thread-self/schedstat`), which a busy machine does not inflate as it
//! does wall time.
//!
//! `cargo bench --bench mask`; figures are recorded by hand in `bench/RESULTS.md`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canopy::config::raw_tree::RawTree;
use canopy::mask::Mask;
use canopy::mask::read::ReadMask;
use canopy::rewrite::ViewNames;
use canopy::rewrite::json::map_namespaces;
use canopy::transform::{MAX_EVENT, MAX_RESPONSE_BODY, Translation, event, lines, list};
use canopy::tree::Tree;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};

/// The allocator the `canopy` binary uses, so figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set in the child processes that measure memory: the list size in MB and `list` or `watch`.
const MEMORY_RUN: &str = "CANOPY_MASK_BENCH_MEMORY";
/// Frame size of answers as the upstream connection delivers them.
const FRAME: usize = 16 << 10;

fn main() {
    if let Ok(run) = std::env::var(MEMORY_RUN) {
        return memory_run(&run);
    }
    let mut criterion = Criterion::default().configure_from_args();
    timings(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` only checks that the routines run.
    if std::env::args().any(|arg| arg == "--bench") {
        memory_report();
    }
}

/// The example tree and the translation of a pod answer into view `acme/web` for an editor.
fn translation(watch: bool) -> Translation {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy-config/example.yaml"))
        .expect("example config");
    let config: Value = serde_saphyr::from_str(&text).expect("example config is YAML");
    let raw: RawTree = serde_json::from_value(config["tree"].clone()).expect("example tree");
    let tree = Arc::new(Tree::compile(&raw, "tree").expect("example tree compiles"));
    let view = tree.node("acme/web").expect("view acme/web");
    let mask = Mask::of(&tree.nodes[view].masks, "acme/web", "", "pods", Some("edit")).expect("pods are masked");
    Translation {
        tree,
        view,
        namespace: Some(("acme-web-dev".into(), "dev".into())),
        watch,
        namespaces: false,
        secrets: None,
        mask: Some(ReadMask { mask, include_object: None }),
    }
}

/// A pod as the apiserver answers it: about 4 KB of JSON, managed fields included.
fn pod(i: usize) -> Value {
    let namespace = if i.is_multiple_of(2) { "acme-web-dev" } else { "acme-web-prod" };
    let name = format!("web-7d9c6b5f4-{i:05x}");
    let node = format!("node-{}", i % 17);
    let host_ip = format!("10.0.{}.{}", i % 7, i % 250 + 2);
    let pod_ip = format!("10.244.{}.{}", i % 200, i % 250 + 2);
    let time = "2026-11-25T20:33:39Z";
    let conditions: Vec<Value> =
        ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            .iter()
            .map(|kind| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": time}))
            .collect();
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": name, "generateName": "web-7d9c6b5f4-", "namespace": namespace,
            "uid": format!("6f1c2a4e-0b7d-4c1e-9a53-{i:012x}"), "resourceVersion": (100_000 + i).to_string(),
            "creationTimestamp": time,
            "labels": {"app": "web", "pod-template-hash": "7d9c6b5f4", "tier": "frontend"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c6b5f4",
                "uid": "0d3c9a8e-6b5f-4e2a-9c1d-7a8b9c0d1e2f", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": time,
                 "fieldsType": "FieldsV1", "fieldsV1": {
                    "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}, "f:tier": {}},
                        "f:ownerReferences": {".": {}, "k:{\"uid\":\"0d3c9a8e-6b5f-4e2a-9c1d-7a8b9c0d1e2f\"}": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:env": {".": {}, "k:{\"name\":\"PORT\"}": {".": {}, "f:name": {}, "f:value": {}}},
                        "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:ports": {".": {}, "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}},
                        "f:resources": {".": {}, "f:limits": {".": {}, "f:memory": {}}, "f:requests": {".": {}, "f:cpu": {}, "f:memory": {}}},
                        "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                        "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                        "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": time, "fieldsType": "FieldsV1",
                 "subresource": "status", "fieldsV1": {"f:status": {
                    "f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
                    "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {},
                    "f:podIPs": {".": {}, format!("k:{{\"ip\":\"{pod_ip}\"}}"): {".": {}, "f:ip": {}}}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}],
            "containers": [{"name": "web", "image": "registry.example/web:1.4.2", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "PORT", "value": "8080"}],
                "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                "volumeMounts": [{"name": "kube-api-access", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "nodeName": node, "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": time,
            "containerStatuses": [{"name": "web", "state": {"running": {"startedAt": time}}, "lastState": {},
                "ready": true, "restartCount": 0, "image": "registry.example/web:1.4.2",
                "imageID": "registry.example/web@sha256:4c1e9a530b7d6f1c2a4e0b7d4c1e9a530b7d6f1c2a4e0b7d4c1e9a530b7d6f1c",
                "containerID": format!("containerd://{i:064x}"), "started": true}],
            "qosClass": "Burstable"
        }
    })
}

/// A PodList of at least `bytes` bytes of JSON, and the number of pods in it.
fn pod_list(bytes: usize) -> (Vec<u8>, usize) {
    let mut out = br#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"123456"},"items":["#.to_vec();
    let mut pods = 0;
    while out.len() < bytes {
        if pods > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &pod(pods)).expect("a pod serializes");
        pods += 1;
    }
    out.extend_from_slice(b"]}");
    (out, pods)
}

/// The same pods as a watch stream: one `ADDED` event per line, cut into frames.
fn watch_frames(bytes: usize) -> (Vec<Bytes>, usize) {
    let mut stream = Vec::with_capacity(bytes + (4 << 10));
    let mut pods = 0;
    while stream.len() < bytes {
        serde_json::to_writer(&mut stream, &json!({"type": "ADDED", "object": pod(pods)}))
            .expect("an event serializes");
        stream.push(b'\n');
        pods += 1;
    }
    (frames(&stream), pods)
}

/// Streams `frames` through the watch translation, dropping each translated frame as it comes,
/// as the connection to the client does; the bytes that came out.
fn translate_watch(runtime: &tokio::runtime::Runtime, translation: &Translation, frames: Vec<Bytes>) -> usize {
    drain(runtime, event::translate_events(body_of(frames), translation.clone(), MAX_EVENT))
}

/// The same through the whole-document path, one event at a time, for comparison.
fn translate_watch_whole(runtime: &tokio::runtime::Runtime, translation: &Translation, frames: Vec<Bytes>) -> usize {
    let translation = translation.clone();
    drain(runtime, lines::translate_lines(body_of(frames), MAX_EVENT, move |line| translation.apply_bytes(line)))
}

/// Streams `frames` of a list answer through the list translation, dropping each translated
/// frame as it comes; the bytes that came out.
fn translate_list(runtime: &tokio::runtime::Runtime, translation: &Translation, frames: Vec<Bytes>) -> usize {
    drain(runtime, list::translate(body_of(frames), translation.clone(), MAX_EVENT, MAX_RESPONSE_BODY))
}

/// An answer arriving in `frames`.
fn body_of(frames: Vec<Bytes>) -> canopy::body::Body {
    canopy::body::boxed(StreamBody::new(futures_util::stream::iter(
        frames.into_iter().map(|frame| Ok::<_, canopy::body::BoxError>(http_body::Frame::data(frame))),
    )))
}

/// Reads `out` to its end, dropping each frame; the bytes that came out.
fn drain(runtime: &tokio::runtime::Runtime, mut out: canopy::body::Body) -> usize {
    runtime.block_on(async {
        let mut total = 0;
        while let Some(frame) = out.frame().await {
            total += frame.expect("the answer translates").into_data().map_or(0, |data| data.len());
        }
        total
    })
}

fn frames(bytes: &[u8]) -> Vec<Bytes> {
    bytes.chunks(FRAME).map(Bytes::copy_from_slice).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("a runtime")
}

fn timings(criterion: &mut Criterion) {
    let list_translation = translation(false);
    let watch_translation = translation(true);
    let (list, pods) = pod_list(50 << 20);
    let parsed: Value = serde_json::from_slice(&list).expect("the list parses");
    eprintln!("PodList: {} bytes, {pods} pods, {} bytes per pod", list.len(), list.len() / pods);

    let list_frames = frames(&list);
    let runtime = runtime();
    let mut group = criterion.benchmark_group("list-50MB");
    group.throughput(Throughput::BytesDecimal(list.len() as u64));
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("translate (list::translate)", |b| {
        b.iter(|| translate_list(&runtime, &list_translation, black_box(list_frames.clone())))
    });
    group.bench_function("whole document (apply_bytes)", |b| {
        b.iter(|| list_translation.apply_bytes(black_box(&list)).expect("the list translates"))
    });
    group.bench_function("stage: parse", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&list)).expect("parses"))
    });
    let names = ViewNames::new(&list_translation.tree, list_translation.view);
    group.bench_function("stage: names", |b| {
        b.iter_batched(
            || parsed.clone(),
            |mut value| {
                map_namespaces(&mut value, &|name: &str| names.to_virtual(name));
                value
            },
            BatchSize::PerIteration,
        )
    });
    let mask = list_translation.mask.clone().expect("pods are masked");
    group.bench_function("stage: masks", |b| {
        b.iter_batched(
            || parsed.clone(),
            |mut value| {
                mask.apply(&mut value);
                value
            },
            BatchSize::PerIteration,
        )
    });
    group
        .bench_function("stage: serialize", |b| b.iter(|| serde_json::to_vec(black_box(&parsed)).expect("serializes")));
    group.finish();
    drop((parsed, list_frames));

    let (frames, events) = watch_frames(50 << 20);
    let stream_bytes: usize = frames.iter().map(Bytes::len).sum();
    eprintln!("watch: {stream_bytes} bytes, {events} events in {} frames of {FRAME} bytes", frames.len());
    let mut group = criterion.benchmark_group("watch-50MB");
    group.throughput(Throughput::BytesDecimal(stream_bytes as u64));
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("translate (translate_events)", |b| {
        b.iter(|| translate_watch(&runtime, &watch_translation, black_box(frames.clone())))
    });
    group.bench_function("whole document per event (apply_bytes)", |b| {
        b.iter(|| translate_watch_whole(&runtime, &watch_translation, black_box(frames.clone())))
    });
    group.finish();
}

/// Runs this bench in a fresh process per list size and kind, and prints what each reported.
fn memory_report() {
    let Ok(exe) = std::env::current_exe() else { return };
    println!("\nPeak memory of one translation (fresh process per row; VmHWM reset after the input is built):");
    println!(
        "{:<6} {:>8} {:>10} {:>14} {:>14} {:>12} {:>14}",
        "kind", "input", "items", "input MiB", "peak +MiB", "CPU ms", "MB/s per CPU"
    );
    for kind in ["list", "watch"] {
        for megabytes in [5, 50] {
            let output = std::process::Command::new(&exe).env(MEMORY_RUN, format!("{megabytes} {kind}")).output();
            match output {
                Ok(output) if output.status.success() => print!("{}", String::from_utf8_lossy(&output.stdout)),
                Ok(output) => println!("{kind} {megabytes} MB failed: {}", String::from_utf8_lossy(&output.stderr)),
                Err(error) => println!("{kind} {megabytes} MB did not start: {error}"),
            }
        }
    }
}

/// One measurement in this (fresh) process: builds the input, resets the peak, translates once.
fn memory_run(run: &str) {
    let (megabytes, kind) = run.split_once(' ').expect("`<MB> <list|watch>`");
    let bytes = megabytes.parse::<usize>().expect("a size in MB") << 20;
    let (frames, items) = match kind {
        "list" => {
            let (list, pods) = pod_list(bytes);
            (frames(&list), pods)
        }
        _ => watch_frames(bytes),
    };
    let input_bytes = frames.iter().map(Bytes::len).sum::<usize>();
    let translation = translation(kind == "watch");
    let runtime = runtime();
    // Writing 5 resets VmHWM to the current RSS (Linux ≥ 4.0).
    std::fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs");
    let before = status_kib("VmRSS");
    let cpu = thread_cpu_ns();
    let out = match kind {
        "list" => translate_list(&runtime, &translation, frames),
        _ => translate_watch(&runtime, &translation, frames),
    };
    let cpu_ms = (thread_cpu_ns() - cpu) as f64 / 1e6;
    let peak = status_kib("VmHWM");
    black_box(out);
    println!(
        "{kind:<6} {:>6}MB {items:>10} {:>14.1} {:>14.1} {cpu_ms:>12.0} {:>14.0}",
        megabytes,
        input_bytes as f64 / (1 << 20) as f64,
        peak.saturating_sub(before) as f64 / 1024.0,
        input_bytes as f64 / 1e6 / (cpu_ms / 1e3),
    );
}

/// A `kB` figure of `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix(" kB")?.parse().ok())
        .expect("the field is there")
}

/// Nanoseconds this thread has run on a CPU.
fn thread_cpu_ns() -> u64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("/proc/thread-self/schedstat");
    schedstat.split_whitespace().next().and_then(|ns| ns.parse().ok()).expect("schedstat's first field")
}
