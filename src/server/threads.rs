//! Thread per core. Each serving thread runs a single-threaded runtime of its own with a clone
//! of the listening socket, its own pipeline and its own upstream connections, so a request is
//! read, forwarded and answered on one thread and never wakes another. A shared work-stealing
//! pool spent 16–25 % more CPU per request on such wake-ups (bench/RESULTS.md). The thread that
//! is free first accepts the next connection.

use std::future::Future;
use std::io;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// Resolves once shutdown begins (or its sender is gone).
pub async fn stopping(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Serves `tcp` on one thread per element of `each`, each running `serve(its element, listener,
/// stop)` to completion on a runtime of its own; resolves when every thread has finished.
pub async fn serve_on_threads<T, S, F>(
    each: Vec<T>,
    tcp: TcpListener,
    stop: watch::Receiver<bool>,
    serve: S,
) -> io::Result<()>
where
    T: Send + 'static,
    S: Fn(T, TcpListener, watch::Receiver<bool>) -> F + Clone + Send + 'static,
    F: Future<Output = ()>,
{
    let socket = tcp.into_std()?;
    let mut finished = Vec::with_capacity(each.len());
    for (index, own) in each.into_iter().enumerate() {
        // Built here, so a runtime that cannot start fails startup instead of one thread.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let socket = socket.try_clone()?;
        let (serve, stop) = (serve.clone(), stop.clone());
        let (done, finished_one) = oneshot::channel::<()>();
        std::thread::Builder::new().name(format!("canopy-serve-{index}")).spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(socket) {
                    Ok(tcp) => serve(own, tcp, stop).await,
                    Err(error) => tracing::error!(%error, "a serving thread cannot listen"),
                }
            });
            let _ = done.send(());
        })?;
        finished.push(finished_one);
    }
    // Only the threads hold the socket now, so it closes as soon as they stop accepting and
    // new connections are refused during the drain instead of waiting in the backlog.
    drop(socket);
    for finished_one in finished {
        // An error means the thread panicked; the others still drain.
        let _ = finished_one.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Every thread accepts on the shared socket; told to stop, they all stop accepting, the
    /// socket refuses new connections while they drain, and all of them finish.
    #[tokio::test]
    async fn threads_share_the_socket_and_stop_together() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = tcp.local_addr().expect("address");
        let (stop, stopped) = watch::channel(false);
        let (release, released) = watch::channel(false);
        let accepted_on = Arc::new(Mutex::new(HashSet::new()));
        let seen = accepted_on.clone();
        let serving = tokio::spawn(serve_on_threads(vec![(); 3], tcp, stopped, move |(), tcp, stop| {
            let (seen, released) = (seen.clone(), released.clone());
            async move {
                let accept = async {
                    while let Ok((mut stream, _)) = tcp.accept().await {
                        seen.lock().expect("lock").insert(std::thread::current().name().map(str::to_owned));
                        let _ = stream.shutdown().await;
                    }
                };
                tokio::select! {
                    () = accept => {}
                    () = stopping(stop) => {}
                }
                drop(tcp);
                stopping(released).await;
            }
        }));
        let mut connections = 0;
        while accepted_on.lock().expect("lock").len() < 3 && connections < 3000 {
            let _ = tokio::net::TcpStream::connect(address).await.expect("connect");
            connections += 1;
            tokio::task::yield_now().await;
        }
        stop.send(true).expect("stop");
        let refused = async {
            while tokio::net::TcpStream::connect(address).await.is_ok() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), refused).await.expect("refused while draining");
        release.send(true).expect("release");
        tokio::time::timeout(std::time::Duration::from_secs(10), serving)
            .await
            .expect("all threads stop")
            .expect("join")
            .expect("serve");
        let threads = accepted_on.lock().expect("lock").len();
        assert!(threads >= 2, "connections were accepted on {threads} thread(s)");
    }
}
