//! `metadata.remainingItemCount` of a paged `-A` list: how many items follow the page, as the
//! apiserver counts them for one namespace. Known exactly only where upstream counts exactly: the
//! rest of the namespace the page stopped in is upstream's own `remainingItemCount` there, and
//! each namespace not yet reached is counted with a `limit=1` list at the list's snapshot (one
//! item, plus upstream's count of those after it). Where upstream gives no count (a label or field
//! selector: the apiserver gives none either), where Canopy drops items upstream counts (secrets
//! of types the view hides) or where more than [`MAX_COUNTED`] namespaces are left, the count is
//! left out, as the apiserver leaves it out when it cannot know it.

use futures_util::{StreamExt, stream};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tower::{Service, ServiceExt};

use super::FanOut;
use crate::body::Body;
use crate::status::Status;
use crate::transform::MAX_EVENT;

/// The most namespaces counted for one page: past it, the count costs more requests than the
/// page it describes, and is left out.
pub(super) const MAX_COUNTED: usize = 64;
/// Namespaces counted at once.
const CONCURRENT: usize = 4;

/// The items after a page that stopped in namespace `index` (`rest`: upstream's count of what
/// remains there; `None` when unknown), counting the namespaces after it at `snapshot` with
/// `base`, the caller's query without paging.
pub(super) async fn remaining<S>(
    fan: &FanOut,
    inner: S,
    base: &[(String, String)],
    snapshot: &str,
    index: usize,
    rest: Option<u64>,
) -> Option<u64>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    let rest = rest?;
    if fan.translation.secrets.is_some() {
        return None;
    }
    let later = fan.namespaces.get(index + 1..).unwrap_or_default();
    if later.len() > MAX_COUNTED {
        return None;
    }
    let mut query = base.to_vec();
    query.extend([
        ("resourceVersion".to_owned(), snapshot.to_owned()),
        ("resourceVersionMatch".to_owned(), "Exact".to_owned()),
        ("limit".to_owned(), "1".to_owned()),
    ]);
    // Each count owns its clone of `inner` (which need not be `Sync`).
    let counts: Vec<_> = later.iter().map(|namespace| count(fan, inner.clone(), namespace, &query)).collect();
    let counts: Vec<Option<u64>> = stream::iter(counts).buffered(CONCURRENT).collect().await;
    counts.into_iter().try_fold(rest, |sum, count| Some(sum + count?))
}

/// How many items `namespace` holds: `None` when upstream does not say exactly.
async fn count<S>(fan: &FanOut, inner: S, namespace: &str, query: &[(String, String)]) -> Option<u64>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
{
    let mut request = fan.request(namespace, query).ok()?;
    // Canopy reads this answer itself: a plain list, whatever the caller's answer is made of.
    request.headers_mut().insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let response = inner.oneshot(request).await.ok()?;
    match response.status() {
        // A namespace the merge skips holds nothing of the answer.
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => return Some(0),
        status if !status.is_success() => return None,
        _ => {}
    }
    let body = Limited::new(response.into_body(), MAX_EVENT).collect().await.ok()?.to_bytes();
    items_of(&serde_json::from_slice(&body).ok()?)
}

/// The items a `limit=1` list says its namespace holds: those it carries, and upstream's count of
/// those after them when it names a next page.
pub(super) fn items_of(list: &Value) -> Option<u64> {
    let carried = list.get("items")?.as_array().map_or(0, Vec::len) as u64;
    let metadata = list.get("metadata");
    let more = metadata.and_then(|m| m.get("continue")).and_then(Value::as_str).is_some_and(|c| !c.is_empty());
    if !more {
        return Some(carried);
    }
    let after = metadata?.get("remainingItemCount")?.as_u64()?;
    Some(carried + after)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_namespace_holds_its_page_and_upstreams_count_after_it() {
        assert_eq!(items_of(&json!({"kind": "PodList", "items": [], "metadata": {}})), Some(0));
        assert_eq!(items_of(&json!({"kind": "PodList", "items": null, "metadata": {"resourceVersion": "5"}})), Some(0));
        assert_eq!(items_of(&json!({"items": [{}], "metadata": {"continue": ""}})), Some(1));
        assert_eq!(items_of(&json!({"items": [{}], "metadata": {"continue": "c", "remainingItemCount": 6}})), Some(7));
        // A next page without a count (a selector): not known.
        assert_eq!(items_of(&json!({"items": [{}], "metadata": {"continue": "c"}})), None);
        assert_eq!(items_of(&json!({"kind": "Status", "code": 500})), None);
    }
}
