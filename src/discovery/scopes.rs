//! Which resources are cluster-scoped, as the upstream apiserver's aggregated discovery says —
//! built-in, aggregated and custom resources alike. `/api` and `/apis` are polled every [`POLL`]
//! with their ETags, so an unchanged document costs a `304` and a CRD created or deleted is known
//! within one poll; each change publishes a new [`ScopeTable`] that requests read without I/O
//! (through [`crate::tree::Tree::is_cluster_scoped`]). Until the first answer, and for resources
//! discovery does not list, the built-in table of [`crate::request::scope`] answers.

use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

use crate::request::scope::ScopeTable;
use crate::tree::ResourceScopes;

/// How often discovery is asked whether it changed.
pub const POLL: Duration = Duration::from_secs(2);
/// How long the first reading may hold up the start.
const FIRST: Duration = Duration::from_secs(10);
/// The largest discovery document read (clusters with many CRDs have documents of a few MB).
const MAX_DOCUMENT: usize = 64 << 20;
/// The aggregated discovery media type, the only one asked for.
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// The documents read: the core group and the named groups.
const PATHS: [&str; 2] = ["/api", "/apis"];

/// Why discovery could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScopesError {
    /// The request failed.
    #[error("cannot ask the apiserver: {0}")]
    Request(#[from] kube::Error),
    /// The apiserver answered with another status.
    #[error("the apiserver answered {0}")]
    Status(StatusCode),
    /// The body could not be read, or was too large.
    #[error("cannot read the discovery document: {0}")]
    Body(String),
    /// The document is not an `APIGroupDiscoveryList`.
    #[error("the discovery document is not an APIGroupDiscoveryList: {0}")]
    Parse(String),
}

/// The newest scopes discovery reported, shared by every request.
#[derive(Debug, Default)]
pub struct DiscoveredScopes {
    table: RwLock<Option<Arc<ScopeTable>>>,
}

impl ResourceScopes for DiscoveredScopes {
    fn table(&self) -> Option<Arc<ScopeTable>> {
        self.table.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl DiscoveredScopes {
    /// Reads discovery once (waiting at most [`FIRST`]; on failure the built-in table answers
    /// meanwhile), then keeps following it while the returned value is in use.
    pub async fn start(client: kube::Client) -> Arc<Self> {
        let scopes = Arc::new(Self::default());
        let mut poller = Poller { client, documents: Default::default() };
        match tokio::time::timeout(FIRST, poller.refresh(&scopes)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "reading discovery; built-in scopes answer meanwhile"),
            Err(_) => tracing::warn!("discovery did not answer in time; built-in scopes answer meanwhile"),
        }
        tokio::spawn(poller.follow(Arc::downgrade(&scopes)));
        scopes
    }

    fn publish(&self, table: ScopeTable) {
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(table));
    }
}

/// The last reading of each of [`PATHS`]: its ETag and what it said.
type Document = Option<(Option<HeaderValue>, ScopeTable)>;

struct Poller {
    client: kube::Client,
    documents: [Document; 2],
}

impl Poller {
    async fn follow(mut self, scopes: Weak<DiscoveredScopes>) {
        let mut interval = tokio::time::interval(POLL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            let Some(scopes) = scopes.upgrade() else { return };
            if let Err(error) = self.refresh(&scopes).await {
                tracing::warn!(%error, "reading discovery; the last scopes read stay in force");
            }
        }
    }

    /// Asks for each document that changed and publishes the scopes once all have been read.
    async fn refresh(&mut self, scopes: &DiscoveredScopes) -> Result<(), ScopesError> {
        let mut changed = false;
        for (path, document) in PATHS.iter().zip(self.documents.iter_mut()) {
            let etag = document.as_ref().and_then(|(etag, _)| etag.clone());
            if let Some(read) = read(&self.client, path, etag).await? {
                *document = Some(read);
                changed = true;
            }
        }
        if changed && self.documents.iter().all(Option::is_some) {
            let mut table = ScopeTable::default();
            self.documents.iter().flatten().for_each(|(_, read)| table.extend(read));
            tracing::debug!(resources = table.len(), "discovery changed");
            scopes.publish(table);
        }
        Ok(())
    }
}

/// `path`'s aggregated discovery, unless it still has `etag`.
async fn read(
    client: &kube::Client,
    path: &str,
    etag: Option<HeaderValue>,
) -> Result<Option<(Option<HeaderValue>, ScopeTable)>, ScopesError> {
    let mut request = Request::get(path).header(header::ACCEPT, AGGREGATED);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let request = request.body(kube::client::Body::empty()).map_err(|e| ScopesError::Body(e.to_string()))?;
    let response = client.send(request).await?;
    match response.status() {
        StatusCode::NOT_MODIFIED => return Ok(None),
        StatusCode::OK => {}
        other => return Err(ScopesError::Status(other)),
    }
    let etag = response.headers().get(header::ETAG).cloned();
    let body = Limited::new(response.into_body(), MAX_DOCUMENT)
        .collect()
        .await
        .map_err(|e| ScopesError::Body(e.to_string()))?
        .to_bytes();
    Ok(Some((etag, parse(&body)?)))
}

#[derive(Deserialize)]
struct List {
    kind: String,
    #[serde(default)]
    items: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    versions: Vec<Version>,
}

#[derive(Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Version {
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    resource: String,
    scope: String,
}

/// The scopes an `APIGroupDiscoveryList` lists (the core group's `metadata.name` is empty).
pub fn parse(document: &[u8]) -> Result<ScopeTable, ScopesError> {
    let list: List = serde_json::from_slice(document).map_err(|e| ScopesError::Parse(e.to_string()))?;
    if list.kind != "APIGroupDiscoveryList" {
        return Err(ScopesError::Parse(format!("kind {:?}", list.kind)));
    }
    let mut table = ScopeTable::default();
    for group in &list.items {
        for resource in group.versions.iter().flat_map(|v| &v.resources) {
            match resource.scope.as_str() {
                "Cluster" => table.insert(&group.metadata.name, &resource.resource, true),
                "Namespaced" => table.insert(&group.metadata.name, &resource.resource, false),
                // A scope this reading does not know is no answer: the built-in table decides.
                _ => {}
            }
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::scope::{is_cluster_scoped, is_namespaced_builtin};

    fn recorded() -> ScopeTable {
        let mut table = parse(include_bytes!("testdata/api-aggregated.json")).unwrap();
        table.extend(&parse(include_bytes!("testdata/apis-aggregated.json")).unwrap());
        table
    }

    /// The built-in table and the harness apiserver's recorded discovery agree on every resource.
    #[test]
    fn recorded_discovery_agrees_with_the_built_in_table() {
        let table = recorded();
        assert!(table.len() > 50, "{}", table.len());
        for name in include_str!("../request/cluster_scoped_1.37.txt").lines() {
            let (resource, group) = name.split_once('.').unwrap_or((name, ""));
            assert_eq!(table.cluster_scoped(group, resource), Some(true), "{name}");
            assert!(is_cluster_scoped(group, resource), "{name}");
        }
        for name in include_str!("../request/namespaced_1.37.txt").lines() {
            let (resource, group) = name.split_once('.').unwrap_or((name, ""));
            assert_eq!(table.cluster_scoped(group, resource), Some(false), "{name}");
            assert!(is_namespaced_builtin(group, resource), "{name}");
        }
    }

    #[test]
    fn custom_resources_take_the_scope_discovery_gives() {
        let document = br#"{"kind":"APIGroupDiscoveryList","apiVersion":"apidiscovery.k8s.io/v2","items":[
            {"metadata":{"name":"example.com"},"versions":[{"version":"v1","resources":[
                {"resource":"widgets","scope":"Cluster","subresources":[{"subresource":"status"}]},
                {"resource":"gadgets","scope":"Namespaced"},
                {"resource":"oddities","scope":"Elsewhere"}]}]}]}"#;
        let table = parse(document).unwrap();
        assert_eq!(table.cluster_scoped("example.com", "widgets"), Some(true));
        assert_eq!(table.cluster_scoped("example.com", "gadgets"), Some(false));
        assert_eq!(table.cluster_scoped("example.com", "oddities"), None);
        assert_eq!(table.cluster_scoped("example.com", "widgets/status"), None);
    }

    #[test]
    fn other_documents_are_refused() {
        for document in [&br#"{"kind":"APIGroupList","groups":[]}"#[..], b"[]", b"", b"{\"items\":[]}"] {
            assert!(parse(document).is_err(), "{}", String::from_utf8_lossy(document));
        }
    }
}
