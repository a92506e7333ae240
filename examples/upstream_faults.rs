//! Load driver for upstream faults (bench/upstream-faults.sh): `--clients` clients GET and LIST
//! configmaps through Canopy while `--watches` watches stay open (reopened after they end, as
//! informers do), then the apiserver process is paused (SIGSTOP for `--pause-seconds`, then
//! SIGCONT) and later killed (SIGKILL) and restarted by `--restart` on the same port. Prints
//! what the clients saw: every answer that was not 200 by code and whether its body was a
//! `Status`, requests that never got an answer, how every watch ended, and how long after the
//! apiserver answered again (`/readyz` 200, asked directly) Canopy served again. Bounded: every
//! request gives up after 30 s and the whole run after `--seconds`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use futures_util::StreamExt;

#[derive(Parser)]
struct Args {
    /// Canopy's URL, its CA, and the bearer token to use there.
    #[arg(long)]
    canopy_url: String,
    #[arg(long)]
    canopy_ca: PathBuf,
    #[arg(long)]
    token: String,
    /// The apiserver's URL and CA, to see when it answers again (asked with the same token).
    #[arg(long)]
    apiserver_url: String,
    #[arg(long)]
    apiserver_ca: PathBuf,
    /// The apiserver's process (paused, then killed).
    #[arg(long)]
    apiserver_pid: u32,
    /// Shell command that starts the apiserver again on the same port and returns once it is up.
    #[arg(long)]
    restart: String,
    /// Namespace of the configmaps read and watched (must exist, with configmap `cm-0`).
    #[arg(long)]
    namespace: String,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    #[arg(long, default_value_t = 50)]
    watches: usize,
    #[arg(long, default_value_t = 10)]
    pause_seconds: u64,
    /// How long the load runs before, between and after the faults.
    #[arg(long, default_value_t = 10)]
    settle_seconds: u64,
    /// Upper bound on the whole run.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
}

/// One answer (or its absence) a client got.
struct Answer {
    started: Instant,
    ended: Instant,
    /// HTTP code; 0 when no answer came (transport error or the client's 30 s limit).
    code: u16,
    /// The body was a `Status` object.
    status: bool,
}

/// How one watch ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    /// An `ERROR` event holding a Status with this code.
    ErrorEvent(u64),
    /// The stream ended without one.
    Clean,
    /// The stream broke off.
    Cut,
}

#[derive(Default)]
struct Record {
    answers: Vec<Answer>,
    endings: Vec<(Instant, Ending)>,
}

type Shared = Arc<Mutex<Record>>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let limit = Duration::from_secs(args.seconds);
    runtime.block_on(async { tokio::time::timeout(limit, run(args)).await.context("the run took too long")? })
}

fn client(ca: &PathBuf) -> anyhow::Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca)?)?;
    Ok(reqwest::Client::builder().add_root_certificate(ca).timeout(Duration::from_secs(30)).build()?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let canopy = client(&args.canopy_ca)?;
    let apiserver = client(&args.apiserver_ca)?;
    let record = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let base = format!("{}/api/v1/namespaces/{}/configmaps", args.canopy_url, args.namespace);
    let mut tasks = Vec::new();
    for n in 0..args.clients {
        let (canopy, record, stop, token) =
            (canopy.clone(), Arc::clone(&record), Arc::clone(&stop), args.token.clone());
        let urls = [format!("{base}/cm-0"), format!("{base}?limit=50")];
        tasks.push(tokio::spawn(async move {
            let mut i = n;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let answer = ask(&canopy, &urls[i % 2], &token).await;
                record.lock().unwrap().answers.push(answer);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    for _ in 0..args.watches {
        let (canopy, record, stop, token) =
            (canopy.clone(), Arc::clone(&record), Arc::clone(&stop), args.token.clone());
        let url = format!("{base}?watch=1&allowWatchBookmarks=false");
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                watch_once(&canopy, &url, &token, &record).await;
                // Informers back off before they list and watch again.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    let started = Instant::now();
    let at = |t: Instant| t.duration_since(started).as_secs_f64();
    let settle = Duration::from_secs(args.settle_seconds);
    tokio::time::sleep(settle).await;

    let paused = Instant::now();
    signal(args.apiserver_pid, "STOP")?;
    tokio::time::sleep(Duration::from_secs(args.pause_seconds)).await;
    signal(args.apiserver_pid, "CONT")?;
    let resumed = answers_again(&apiserver, &args.apiserver_url, &args.token).await;
    eprintln!("[faults] paused at {:.1} s, answering again at {:.1} s", at(paused), at(resumed));
    tokio::time::sleep(settle).await;

    let killed = Instant::now();
    signal(args.apiserver_pid, "KILL")?;
    let restart = args.restart.clone();
    let restarted = tokio::task::spawn_blocking(move || Command::new("sh").args(["-c", &restart]).status());
    let back = answers_again(&apiserver, &args.apiserver_url, &args.token).await;
    anyhow::ensure!(restarted.await??.success(), "the restart command failed");
    eprintln!("[faults] killed at {:.1} s, answering again at {:.1} s", at(killed), at(back));
    tokio::time::sleep(settle).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    tasks.iter().for_each(|task| task.abort());

    let record = record.lock().unwrap();
    println!(
        "| fault | requests | not 200 | codes | Status bodies | no answer | watch endings | first 200 after it answers | last failure after it answers |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    summary(&record, "none (before the faults)", started, started, paused);
    for (label, from, answering, until) in
        [("paused (SIGSTOP)", paused, resumed, killed), ("killed and restarted", killed, back, Instant::now())]
    {
        summary(&record, label, from, answering, until);
    }
    Ok(())
}

/// One row: what happened to requests started from `from` (the fault) until `until`, and how
/// soon after `answering` (the apiserver answering again) Canopy served again.
fn summary(record: &Record, label: &str, from: Instant, answering: Instant, until: Instant) {
    let answers: Vec<&Answer> = record.answers.iter().filter(|a| a.started >= from && a.started < until).collect();
    let failed: Vec<&&Answer> = answers.iter().filter(|a| a.code != 200).collect();
    let mut codes = BTreeMap::new();
    for answer in &failed {
        *codes.entry(answer.code).or_insert(0) += 1;
    }
    let codes: Vec<String> = codes.iter().map(|(code, n)| format!("{code}×{n}")).collect();
    let statuses = failed.iter().filter(|a| a.status).count();
    let unanswered = failed.iter().filter(|a| a.code == 0).count();
    let mut endings = BTreeMap::new();
    for (_, ending) in record.endings.iter().filter(|(t, _)| *t >= from && *t < until) {
        *endings.entry(ending.clone()).or_insert(0) += 1;
    }
    let endings: Vec<String> = endings
        .iter()
        .map(|(ending, n)| match ending {
            Ending::ErrorEvent(code) => format!("ERROR event ({code})×{n}"),
            Ending::Clean => format!("clean end×{n}"),
            Ending::Cut => format!("cut×{n}"),
        })
        .collect();
    let first_ok = answers.iter().filter(|a| a.started >= answering && a.code == 200).map(|a| a.ended).min();
    // Answers that came after `until` failed because of the next fault, not this one.
    let last_failure = failed.iter().map(|a| a.ended).filter(|t| *t >= answering && *t < until).max();
    let after = |t: Option<Instant>| {
        t.map_or("—".to_owned(), |t| format!("{:.2} s", t.duration_since(answering).as_secs_f64()))
    };
    println!(
        "| {label} | {} | {} | {} | {statuses}/{} | {unanswered} | {} | {} | {} |",
        answers.len(),
        failed.len(),
        if codes.is_empty() { "—".to_owned() } else { codes.join(", ") },
        failed.len(),
        if endings.is_empty() { "—".to_owned() } else { endings.join(", ") },
        after(first_ok),
        after(last_failure),
    );
}

async fn ask(client: &reqwest::Client, url: &str, token: &str) -> Answer {
    let started = Instant::now();
    let (code, status) = match client.get(url).bearer_auth(token).send().await {
        Ok(response) => {
            let code = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            (code, is_status(&body))
        }
        Err(_) => (0, false),
    };
    Answer { started, ended: Instant::now(), code, status }
}

fn is_status(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["kind"] == "Status")
}

/// Opens one watch and follows it to its end; a refused open counts as an answer.
async fn watch_once(client: &reqwest::Client, url: &str, token: &str, record: &Shared) {
    let started = Instant::now();
    // No overall limit on a watch: only its start is bounded (by the answer's headers).
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        client.get(url).bearer_auth(token).timeout(Duration::from_secs(3600)).send(),
    )
    .await;
    let response = match response {
        Ok(Ok(response)) if response.status() == 200 => response,
        Ok(Ok(response)) => {
            let code = response.status().as_u16();
            let status = is_status(&response.bytes().await.unwrap_or_default());
            record.lock().unwrap().answers.push(Answer { started, ended: Instant::now(), code, status });
            return;
        }
        _ => {
            record.lock().unwrap().answers.push(Answer { started, ended: Instant::now(), code: 0, status: false });
            return;
        }
    };
    record.lock().unwrap().answers.push(Answer { started, ended: Instant::now(), code: 200, status: false });
    let mut stream = response.bytes_stream();
    let mut last_line = Vec::new();
    let mut pending = Vec::new();
    let ending = loop {
        match stream.next().await {
            Some(Ok(chunk)) => {
                pending.extend_from_slice(&chunk);
                if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                    let complete: Vec<u8> = pending.drain(..=end).collect();
                    if let Some(line) = complete.split(|b| *b == b'\n').rfind(|l| !l.is_empty()) {
                        last_line = line.to_vec();
                    }
                }
            }
            Some(Err(_)) => break Ending::Cut,
            None => {
                let event: serde_json::Value = serde_json::from_slice(&last_line).unwrap_or_default();
                break match event["type"].as_str() {
                    Some("ERROR") => Ending::ErrorEvent(event["object"]["code"].as_u64().unwrap_or(0)),
                    _ => Ending::Clean,
                };
            }
        }
    };
    record.lock().unwrap().endings.push((Instant::now(), ending));
}

/// When the apiserver answers `/readyz` with 200 again, asked directly every 50 ms.
async fn answers_again(client: &reqwest::Client, url: &str, token: &str) -> Instant {
    loop {
        let asked = client.get(format!("{url}/readyz")).bearer_auth(token).timeout(Duration::from_millis(500));
        if asked.send().await.is_ok_and(|r| r.status() == 200) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}
