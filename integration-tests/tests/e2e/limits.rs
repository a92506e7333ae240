//! Canopy under abuse: a slowloris client (a header byte a second) is closed at the header
//! timeout while others are served, a body trickled a byte a second is answered 408 at the body
//! timeout, the connection cap holds, and a flood of unknown bearer
//! tokens costs a bounded number of TokenReviews, the rest answered 429 with `Retry-After`.
//! Each test prints the figures `bench/RESULTS.md` records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Opens a TLS connection to Canopy and sends a request head one byte a second, never ending
/// it; returns how long the connection lived once Canopy closed it, `None` if it was still open
/// after `limit`.
async fn slowloris(canopy: &Canopy, limit: Duration) -> Option<Duration> {
    let tcp = tokio::net::TcpStream::connect(canopy.url.trim_start_matches("https://")).await.unwrap();
    let started = Instant::now();
    let Ok(tls) = http1_connector(canopy).connect(server_name(), tcp).await else { return Some(started.elapsed()) };
    let (mut reader, mut writer) = tokio::io::split(tls);
    let head = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: canopy\r\nX-Slow: ";
    let mut bytes = head.iter().chain(std::iter::repeat(&b'a'));
    let mut buffer = [0u8; 1024];
    while started.elapsed() < limit {
        tokio::select! {
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                // Whatever Canopy says before closing (if anything), the close is what counts.
                Ok(_) => continue,
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if writer.write_all(&[*bytes.next().unwrap()]).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

/// A TLS connection to Canopy speaking HTTP/1.1.
async fn connect(canopy: &Canopy) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(canopy.url.trim_start_matches("https://")).await.unwrap();
    http1_connector(canopy).connect(server_name(), tcp).await.unwrap()
}

/// A TLS connector trusting Canopy's CA and offering HTTP/1.1 only.
fn http1_connector(canopy: &Canopy) -> tokio_rustls::TlsConnector {
    let ca = pem::parse(std::fs::read(&canopy.ca_file).unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca.contents().to_vec())).unwrap();
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The name Canopy's serving certificate holds for loopback.
fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap()
}

/// The value of an unlabelled metric on Canopy's admin port.
fn metric(canopy: &Canopy, name: &str) -> f64 {
    let (_, text) = canopy.admin_get("/metrics").unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn limited(limits: &str) -> Options {
    Options { limits: Some(limits.to_owned()), ..Options::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_is_closed_at_the_header_timeout_while_others_are_served() {
    let harness = Harness::shared();
    let canopy = Arc::new(Canopy::start_with(harness, limited("    headerReadTimeoutSeconds: 3\n")));
    let slow: Vec<_> = (0..5)
        .map(|_| {
            let canopy = Arc::clone(&canopy);
            tokio::spawn(async move { slowloris(&canopy, Duration::from_secs(30)).await })
        })
        .collect();
    let http = canopy.http();
    let url = format!("{}/api/v1/namespaces", canopy.url);
    for _ in 0..10 {
        let started = Instant::now();
        let response = http.get(&url).bearer_auth(harness.token("admin")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        println!("figure: a normal request beside 5 slowloris connections: {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for task in slow {
        let lifetime = task.await.unwrap().expect("a slowloris connection still open after 30 s");
        println!("figure: slowloris connection lifetime with headerReadTimeoutSeconds 3: {lifetime:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_cap_holds_and_frees_with_the_header_timeout() {
    let harness = Harness::shared();
    // The held connections last until the header timeout; long enough that a loaded machine
    // still sees the cap hold before they go.
    let options = limited("    headerReadTimeoutSeconds: 12\n    maxConnections: 2\n");
    let canopy = Arc::new(Canopy::start_with(harness, options));
    let opened = Instant::now();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let canopy = Arc::clone(&canopy);
            tokio::spawn(async move { slowloris(&canopy, Duration::from_secs(30)).await })
        })
        .collect();
    eventually(Duration::from_secs(5), "two open connections", || metric(&canopy, "canopy_open_connections") == 2.0);
    // A third client waits in the listen backlog until a slot frees.
    let (http, url) = (canopy.http(), format!("{}/api/v1/namespaces", canopy.url));
    let token = harness.token("admin").to_owned();
    let started = Instant::now();
    let third = tokio::spawn(async move { http.get(&url).bearer_auth(token).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(opened.elapsed() < Duration::from_secs(11), "the machine is too slow for this test's timing");
    assert!(!third.is_finished(), "a third connection was served beside two held ones");
    assert_eq!(metric(&canopy, "canopy_open_connections"), 2.0);
    assert_eq!(third.await.unwrap().unwrap(), 200);
    println!("figure: third client at maxConnections 2 served after {:?}", started.elapsed());
    for task in slow {
        assert!(task.await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_unknown_tokens_is_answered_429() {
    let harness = Harness::shared();
    let options = Options {
        token_review: Some("    unknownTokensPerSecond: 5\n    unknownTokenBurst: 20\n".to_owned()),
        ..Options::default()
    };
    let canopy = Canopy::start_with(harness, options);
    let (http, url) = (canopy.http(), format!("{}/api/v1/namespaces", canopy.url));
    let started = Instant::now();
    let codes: Vec<(u16, Option<String>, serde_json::Value)> = futures_util::stream::iter(0..200)
        .map(|n| {
            let request = http.get(&url).bearer_auth(format!("random-token-{n}-{}", std::process::id()));
            async move {
                let response = request.send().await.unwrap();
                let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), retry, response.json().await.unwrap())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let (refused, limited) = (codes.iter().filter(|c| c.0 == 401).count(), codes.iter().filter(|c| c.0 == 429).count());
    assert_eq!(refused + limited, 200, "{codes:?}");
    for (_, retry, status) in codes.iter().filter(|c| c.0 == 429) {
        assert!(retry.as_deref().is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)), "{retry:?}");
        assert_eq!((status["kind"].as_str(), status["reason"].as_str()), (Some("Status"), Some("TooManyRequests")));
    }
    let reviews = metric(&canopy, "canopy_token_reviews_total");
    // The burst, and the rate for as long as the flood lasted (plus a second of slack).
    let bound = 20.0 + 5.0 * (elapsed.as_secs_f64() + 1.0);
    assert!(reviews <= bound, "{reviews} reviews in {elapsed:?}");
    assert!(limited > 0);
    println!(
        "figure: 200 random tokens at c=16 in {elapsed:?}: {reviews} TokenReviews, {refused} × 401, {limited} × 429"
    );
    // A known client is back once it waited as told.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let response = http.get(&url).bearer_auth(harness.token("admin")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_heads_and_bodies_are_refused() {
    let harness = Harness::shared();
    let canopy = Canopy::start(harness);
    let (http, url) = (canopy.http(), format!("{}/api/v1/namespaces/default/configmaps", canopy.url));
    // Over the 64 KiB of maxHeaderBytes.
    let response =
        http.get(&url).bearer_auth(harness.token("admin")).header("X-Big", "a".repeat(100 << 10)).send().await;
    assert!(response.is_err() || response.unwrap().status() == 431);
    // Over the 3 MiB of maxRequestBodyBytes, as the apiserver answers it.
    let body = format!(r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#, "a".repeat(4 << 20));
    let response = http.post(&url).bearer_auth(harness.token("admin")).body(body).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!((status["kind"].as_str(), status["reason"].as_str()), (Some("Status"), Some("RequestEntityTooLarge")));
    // The connection pool still works for a normal request.
    let response = http.get(&url).bearer_auth(harness.token("admin")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_sent_too_slowly_is_answered_408_with_a_status() {
    let harness = Harness::shared();
    let canopy = Canopy::start_with(harness, limited("    bodyReadTimeoutSeconds: 2\n"));
    let tls = connect(&canopy).await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let head = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: canopy\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        harness.token("admin")
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut answer, mut answered) = (Vec::new(), None);
    let mut buffer = [0u8; 4096];
    // A byte a second, never the whole body; the answer comes (and the connection closes) first.
    while started.elapsed() < Duration::from_secs(30) {
        tokio::select! {
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answered.get_or_insert_with(|| started.elapsed());
                    answer.extend_from_slice(&buffer[..n]);
                }
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if writer.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&answer);
    println!(
        "figure: a body trickled a byte a second with bodyReadTimeoutSeconds 2: answered after {answered:?}, \
         connection closed after {:?}",
        started.elapsed()
    );
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body = &text[text.find("\r\n\r\n").expect("a head") + 4..];
    let json = body.find('{').map(|start| &body[start..=body.rfind('}').unwrap()]).expect("a JSON body");
    let status: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!((status["kind"].as_str(), status["code"].as_u64()), (Some("Status"), Some(408)), "{status}");
}
