//! Where audit lines go: a dedicated thread writes them to stdout, so a slow reader never
//! stalls a request; when the queue is full, lines are dropped and counted rather than waited on.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use super::Record;

/// Lines queued for the writer before new ones are dropped.
const QUEUE: usize = 8192;
/// How long the writer lets lines gather after writing a batch.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// A handle to the audit writer.
#[derive(Clone)]
pub struct AuditSink {
    lines: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Starts a writer to stdout.
    pub fn stdout() -> std::io::Result<Self> {
        let (lines, queue) = sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new().name("canopy-audit".into()).spawn(move || {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            while let Ok(line) = queue.recv() {
                let _ = out.write_all(&line);
                // Flush when caught up, so lines appear promptly without a syscall per line.
                while let Ok(line) = queue.try_recv() {
                    let _ = out.write_all(&line);
                }
                let _ = out.flush();
                // Lines gather while the writer sleeps: one wake-up and one write per batch
                // instead of per request, and a line still reaches stdout within milliseconds.
                std::thread::sleep(BATCH_PAUSE);
            }
        })?;
        Ok(Self { lines, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Queues `record` as one line.
    pub fn write(&self, record: &Record) {
        let Ok(mut line) = serde_json::to_vec(record) else { return };
        line.push(b'\n');
        if let Err(TrySendError::Full(_)) = self.lines.try_send(line) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "audit lines dropped: stdout is not keeping up");
            }
        }
    }
}
