//! Every namespace upstream, read once with Canopy's own credentials, for the commands that show
//! or decide against what exists (`canopy tree --live`, `who-can`, `access-matrix`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use super::{Upstream, UpstreamError};
use crate::config::UpstreamConfig;
use crate::tree::live::LiveNamespace;

/// Bound on the whole read, so an unreachable apiserver fails the command instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Namespaces per list page.
const PAGE: u32 = 500;

/// Why the upstream namespaces could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// No client could be built from the config's `upstream` section.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The apiserver refused or failed the list.
    #[error("upstream: cannot list namespaces: {0}")]
    List(#[source] kube::Error),
    /// The apiserver did not answer in time.
    #[error("upstream: listing namespaces took longer than {0:?}")]
    Timeout(Duration),
}

/// Lists every namespace upstream (metadata only, paged), connecting as `config` says — the same
/// way `canopy serve` and its reconciler do.
pub async fn list_namespaces(config: &UpstreamConfig) -> Result<Vec<LiveNamespace>, LiveError> {
    let client = Upstream::connect(config).await?.kube;
    let api: Api<Namespace> = Api::all(client);
    tokio::time::timeout(READ_TIMEOUT, async {
        let mut namespaces = Vec::new();
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = api.list_metadata(&params).await.map_err(LiveError::List)?;
            namespaces.extend(page.items.into_iter().map(|ns| LiveNamespace {
                name: ns.metadata.name.unwrap_or_default(),
                labels: ns.metadata.labels.unwrap_or_default(),
                terminating: ns.metadata.deletion_timestamp.is_some(),
            }));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(namespaces),
            }
        }
    })
    .await
    .map_err(|_| LiveError::Timeout(READ_TIMEOUT))?
}
