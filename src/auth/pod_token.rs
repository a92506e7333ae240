//! The sidecar's own credential: a token file, by default the pod's projected ServiceAccount
//! token. The kubelet rotates that file well before the token expires (at 80% of its lifetime),
//! so it is re-read every [`REFRESH`] — as client-go does for in-cluster tokens — rather than
//! watched. The token is a credential like any other: it goes through TokenReview (or the static
//! token file) and is never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long a token read from the file is used before the file is read again.
pub const REFRESH: Duration = Duration::from_secs(10);

/// Why the token file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PodTokenError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file holds no token.
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
}

struct Cached {
    token: Arc<str>,
    read_at: Instant,
}

/// A token file, read at start and re-read as it ages.
#[derive(Clone)]
pub struct PodToken {
    path: Arc<Path>,
    refresh: Duration,
    cached: Arc<Mutex<Cached>>,
}

impl std::fmt::Debug for PodToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodToken").field("path", &self.path).finish_non_exhaustive()
    }
}

impl PodToken {
    /// Reads `path`; an unreadable or empty file is an error, so a misconfigured sidecar stops
    /// before it binds its port.
    pub async fn load(path: &Path) -> Result<Self, PodTokenError> {
        Self::load_refreshing(path, REFRESH).await
    }

    async fn load_refreshing(path: &Path, refresh: Duration) -> Result<Self, PodTokenError> {
        let token = read(path).await?;
        let cached = Arc::new(Mutex::new(Cached { token, read_at: Instant::now() }));
        Ok(Self { path: path.into(), refresh, cached })
    }

    /// The current token. A file that cannot be read later (mid-rotation, say) keeps the last
    /// token in use: it stays valid until it expires, and TokenReview will say when it has.
    pub async fn current(&self) -> Arc<str> {
        let (token, fresh) = {
            let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            (Arc::clone(&cached.token), cached.read_at.elapsed() < self.refresh)
        };
        if fresh {
            return token;
        }
        // Read outside the lock; concurrent refreshes read the same small file twice at worst.
        let (token, read_at) = match read(&self.path).await {
            Ok(new) => (new, Instant::now()),
            Err(error) => {
                tracing::warn!(%error, "cannot re-read the sidecar token file; keeping the previous token");
                (token, Instant::now())
            }
        };
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        *cached = Cached { token: Arc::clone(&token), read_at };
        token
    }
}

async fn read(path: &Path) -> Result<Arc<str>, PodTokenError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| PodTokenError::Read { path: path.to_owned(), source })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(PodTokenError::Empty { path: path.to_owned() });
    }
    Ok(token.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test(start_paused = true)]
    async fn rotated_token_is_used_after_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let token = PodToken::load_refreshing(&file, Duration::from_secs(3600)).await.unwrap();
        std::fs::write(&file, "second").unwrap();
        assert_eq!(&*token.current().await, "first", "within the refresh period the cached token is used");

        let token = PodToken::load_refreshing(&file, SHORT).await.unwrap();
        std::fs::write(&file, "third").unwrap();
        tokio::time::advance(SHORT).await;
        assert_eq!(&*token.current().await, "third");
    }

    #[tokio::test(start_paused = true)]
    async fn unreadable_file_keeps_the_last_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first").unwrap();
        let token = PodToken::load_refreshing(&file, SHORT).await.unwrap();
        std::fs::remove_file(&file).unwrap();
        tokio::time::advance(SHORT).await;
        assert_eq!(&*token.current().await, "first");
    }

    #[tokio::test]
    async fn missing_or_empty_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let err = PodToken::load(&file).await.unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: cannot read", file.display())), "{err}");
        std::fs::write(&file, " \n").unwrap();
        let err = PodToken::load(&file).await.unwrap_err().to_string();
        assert_eq!(err, format!("{}: the file is empty", file.display()));
    }
}
