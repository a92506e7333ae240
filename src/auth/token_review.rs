//! Bearer tokens checked by TokenReview against the upstream apiserver, with a bounded TTL cache.
//! Accepted tokens are trusted for `ttl`, refused ones refused for `negative_ttl`, so neither a
//! busy client nor a flood of revoked tokens turns into one TokenReview per request. Cache keys
//! are SHA-256 digests: raw tokens are never kept.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

use super::Identity;
use crate::config::TokenReviewConfig;

/// Why a token could not be checked (as opposed to being refused).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The TokenReview call to the upstream failed.
    #[error("TokenReview failed: {0}")]
    Upstream(#[from] kube::Error),
}

type Key = [u8; 32];

#[derive(Clone)]
struct Entry {
    identity: Option<Identity>,
    expires: Instant,
}

/// Checks tokens with the upstream's TokenReview API.
#[derive(Clone)]
pub struct TokenReviewer {
    api: Api<TokenReview>,
    config: TokenReviewConfig,
    cache: Arc<DashMap<Key, Entry>>,
}

impl TokenReviewer {
    /// A reviewer that asks through `client`.
    pub fn new(client: kube::Client, config: TokenReviewConfig) -> Self {
        Self { api: Api::all(client), config, cache: Arc::new(DashMap::new()) }
    }

    /// The identity `token` belongs to, `None` if the apiserver refuses it.
    pub async fn review(&self, token: &str) -> Result<Option<Identity>, ReviewError> {
        let key: Key = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(entry) = self.cache.get(&key).filter(|e| e.expires > now).map(|e| e.clone()) {
            return Ok(entry.identity);
        }
        let review = TokenReview {
            spec: TokenReviewSpec { token: token.to_owned(), ..Default::default() },
            ..Default::default()
        };
        let answer = self.api.create(&PostParams::default(), &review).await?;
        let identity =
            answer.status.filter(|s| s.authenticated == Some(true)).and_then(|s| s.user).map(|user| Identity {
                user: user.username.unwrap_or_default(),
                uid: user.uid.filter(|uid| !uid.is_empty()),
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default().into_iter().collect(),
            });
        let identity = identity.filter(|id| !id.user.is_empty());
        let ttl = if identity.is_some() { self.config.ttl } else { self.config.negative_ttl };
        self.insert(key, Entry { identity: identity.clone(), expires: now + ttl });
        Ok(identity)
    }

    /// Inserts, keeping the map within `max_entries`: expired entries go first, then the ones
    /// closest to expiry. The scan runs only when the map is full.
    fn insert(&self, key: Key, entry: Entry) {
        if self.cache.len() >= self.config.max_entries {
            let now = Instant::now();
            self.cache.retain(|_, e| e.expires > now);
            while self.cache.len() >= self.config.max_entries {
                let oldest = self.cache.iter().min_by_key(|e| e.expires).map(|e| *e.key());
                match oldest {
                    Some(k) => self.cache.remove(&k),
                    None => break,
                };
            }
        }
        self.cache.insert(key, entry);
    }

    /// Number of cached verdicts (for metrics and tests).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}
