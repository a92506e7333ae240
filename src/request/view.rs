//! The view a request is made from, chosen by its URL: `/v/acme/web/api/v1/...` is the request
//! `/api/v1/...` in view `acme/web` (a kubeconfig's server URL ends in `/v/<path>`, as kcp's
//! `/clusters/<path>`). The view's segments end at the first API root, so node names may not be
//! API roots (the tree refuses them).

/// First path segments of the Kubernetes API: a view path ends before one of these.
pub const API_ROOTS: [&str; 9] =
    ["api", "apis", "openapi", "version", "healthz", "livez", "readyz", "logs", ".well-known"];

/// The view named in the URL, if any (`acme/web`), as the listener received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewPath(pub Option<String>);

/// Splits `path` into the view it names and the API path within the view.
pub fn split_view(path: &str) -> (ViewPath, &str) {
    let Some(after) = path.strip_prefix("/v/") else { return (ViewPath(None), path) };
    let mut end = after.len();
    let mut offset = 0;
    for segment in after.split('/') {
        if API_ROOTS.contains(&segment) {
            end = offset;
            break;
        }
        offset += segment.len() + 1;
    }
    let view = after[..end.min(after.len())].trim_end_matches('/');
    let rest = &after[end.min(after.len())..];
    let rest = if rest.is_empty() { "/" } else { &path[path.len() - rest.len() - 1..] };
    (ViewPath(Some(view.to_owned())), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_prefix_is_split_off() {
        for (path, view, rest) in [
            ("/v/acme/web/api/v1/namespaces", Some("acme/web"), "/api/v1/namespaces"),
            ("/v/acme/apis/apps/v1", Some("acme"), "/apis/apps/v1"),
            ("/v/acme/web", Some("acme/web"), "/"),
            ("/v/acme/version", Some("acme"), "/version"),
            ("/api/v1/pods", None, "/api/v1/pods"),
            ("/version", None, "/version"),
        ] {
            let (got_view, got_rest) = split_view(path);
            assert_eq!((got_view.0.as_deref(), got_rest), (view, rest), "{path}");
        }
    }
}
