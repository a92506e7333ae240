//! Load driver for idle watches (bench/idle-watches.sh): opens `--watches` watches on configmaps
//! in one namespace over HTTP/2, through Canopy or straight at the apiserver (the baseline),
//! measures what Canopy holds for them (RSS, file descriptors, connections to the apiserver), then
//! creates one configmap directly upstream and measures how long each watch takes to see it.
//! Bounded: gives up after `--seconds`. Prints one markdown table row.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use canopy::body;
use canopy::config::UpstreamProtocol;
use canopy::upstream::Upstream;
use clap::Parser;
use http::Request;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::Semaphore;
use tower::ServiceExt;

#[derive(Parser)]
struct Args {
    /// Kubeconfig the watches go to: Canopy's, or the apiserver's for the baseline.
    #[arg(long)]
    watch_kubeconfig: PathBuf,
    /// Kubeconfig for the apiserver itself (the write goes there).
    #[arg(long)]
    admin_kubeconfig: PathBuf,
    /// Canopy's process id, for its RSS, descriptors and connections (none for the baseline).
    #[arg(long)]
    canopy_pid: Option<u32>,
    /// The apiserver's port, to count Canopy's connections to it.
    #[arg(long)]
    apiserver_port: u16,
    /// Namespace written to, directly upstream (created if missing).
    #[arg(long)]
    namespace: String,
    /// The same namespace as the watches name it (in a view); default: `--namespace`.
    #[arg(long)]
    watch_namespace: Option<String>,
    /// Watches to open.
    #[arg(long)]
    watches: usize,
    /// Upper bound on the whole run.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// Label for the table row.
    #[arg(long)]
    label: String,
    /// Shell command started half a second before the write (e.g. a profiler), waited for at the end.
    #[arg(long)]
    before_write: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let limit = Duration::from_secs(args.seconds);
    runtime.block_on(async { tokio::time::timeout(limit, run(args)).await.context("the run took too long")? })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let admin = kube_config(&args.admin_kubeconfig).await?;
    let admin = kube::Client::try_from(admin)?;
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), &args.namespace);
    ensure_namespace(&admin, &args.namespace).await?;
    let canopy = Upstream::from_kube_config(
        kube_config(&args.watch_kubeconfig).await?,
        UpstreamProtocol::Http2,
        Default::default(),
    )?
    .http;

    let before = args.canopy_pid.map(|pid| Holdings::of(pid, args.apiserver_port));
    let watched = args.watch_namespace.as_deref().unwrap_or(&args.namespace);
    let path = format!("/api/v1/namespaces/{watched}/configmaps?watch=1&allowWatchBookmarks=false");
    let opened = Instant::now();
    // Opened a few hundred at a time, as informers starting up would.
    let opening = Arc::new(Semaphore::new(256));
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (open_tx, mut open_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let marker = format!("seen-{}", std::process::id());
    for _ in 0..args.watches {
        let (canopy, path, opening, seen_tx, open_tx) =
            (canopy.clone(), path.clone(), Arc::clone(&opening), seen_tx.clone(), open_tx.clone());
        let marker = marker.clone();
        tokio::spawn(async move {
            let permit = opening.acquire_owned().await;
            let request = Request::get(path).body(body::empty()).expect("a valid request");
            let response = match canopy.oneshot(request).await {
                Ok(response) if response.status().is_success() => response,
                _ => {
                    let _ = open_tx.send(false);
                    return;
                }
            };
            drop(permit);
            let _ = open_tx.send(true);
            let mut body = response.into_body();
            let mut text = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    text.extend_from_slice(data);
                    if text.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                        let _ = seen_tx.send(Instant::now());
                        // Held open, idle, until the driver exits.
                        std::future::pending::<()>().await;
                    }
                }
            }
        });
    }
    let mut open = 0;
    for _ in 0..args.watches {
        open += usize::from(open_rx.recv().await.unwrap_or(false));
    }
    let opening_took = opened.elapsed();
    // Let buffers and connections settle before measuring what the idle watches hold.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = args.canopy_pid.map(|pid| Holdings::of(pid, args.apiserver_port));
    let before_write = match &args.before_write {
        Some(command) => {
            let child = std::process::Command::new("sh").arg("-c").arg(command).spawn()?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some(child)
        }
        None => None,
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_owned();

    let cpu_before = args.canopy_pid.map(cpu_ticks);
    let written = Instant::now();
    let configmap =
        ConfigMap { metadata: ObjectMeta { name: Some(marker), ..Default::default() }, ..Default::default() };
    configmaps.create(&PostParams::default(), &configmap).await?;
    let mut latencies = Vec::with_capacity(open);
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    while latencies.len() < open {
        tokio::select! {
            Some(at) = seen_rx.recv() => latencies.push(at.duration_since(written)),
            () = &mut deadline => break,
        }
    }
    // Canopy's CPU time for the fan-out (user and system, in clock ticks: 10 ms on Linux).
    let cpu = args.canopy_pid.map(cpu_ticks).zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    latencies.sort();
    let quantile =
        |q: f64| latencies.get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)).map_or(f64::NAN, ms);
    let holdings = match (before, during) {
        (Some(before), Some(during)) => format!(
            "{} MB | {:.1} KB | {} | {}",
            during.rss_kb / 1024,
            during.rss_kb.saturating_sub(before.rss_kb) as f64 / open.max(1) as f64,
            during.fds,
            during.upstream,
        ),
        _ => "— | — | — | —".to_owned(),
    };
    let cpu = cpu.map_or("—".to_owned(), |ticks| format!("{} ms", ticks * 10));
    println!(
        "| {} | {}/{} | {:.1} s | {holdings} | {load} | {}/{} | {:.0} | {:.0} | {:.0} | {cpu} |",
        args.label,
        open,
        args.watches,
        opening_took.as_secs_f64(),
        latencies.len(),
        open,
        quantile(0.5),
        quantile(0.99),
        quantile(1.0),
    );
    let _ = configmaps.delete(&configmap.metadata.name.unwrap_or_default(), &Default::default()).await;
    // The command bounds its own time (a profiler writes its data when it ends).
    if let Some(mut child) = before_write {
        child.wait()?;
    }
    Ok(())
}

fn ms(duration: &Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn kube_config(path: &PathBuf) -> anyhow::Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?)
}

async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(name).await?.is_none() {
        let namespace =
            Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
        namespaces.create(&PostParams::default(), &namespace).await?;
    }
    Ok(())
}

/// A process's CPU time so far, user and system, in clock ticks (`/proc/PID/stat` fields 14, 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    [11, 12].iter().filter_map(|&at| fields.get(at)?.parse::<u64>().ok()).sum()
}

/// What a process holds: resident memory, open descriptors, established connections to a port.
struct Holdings {
    rss_kb: u64,
    fds: usize,
    upstream: usize,
}

impl Holdings {
    fn of(pid: u32, port: u16) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let sockets: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .map(|target| target.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|fds| fds.count()).unwrap_or(0);
        let upstream = ["tcp", "tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
            .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let remote =
                    fields.get(2).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
                // State 01 is ESTABLISHED; field 9 is the socket's inode.
                remote == Some(port)
                    && fields.get(3) == Some(&"01")
                    && fields.get(9).is_some_and(|inode| sockets.contains(&format!("socket:[{inode}]")))
            })
            .count();
        Self { rss_kb, fds, upstream }
    }
}
