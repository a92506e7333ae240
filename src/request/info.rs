//! Classifies an HTTP request the way kube-apiserver's `RequestInfoFactory` does: verb (including
//! list, watch and deletecollection), API group and version, resource, subresource, namespace and
//! name. A pure function over method, path and query, so it is unit-tested and fuzzable.

use http::Method;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str};

use super::query::{Query, QueryError};

/// Characters escaped when a path segment is written back: everything outside RFC 3986 `pchar`.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// What a request is, in Kubernetes terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// True for `/api/...` and `/apis/...` requests that name a resource.
    pub is_resource_request: bool,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `proxy`, or the lower-cased method for non-resource requests.
    pub verb: String,
    /// `api` or `apis` for resource requests.
    pub api_prefix: String,
    /// Empty for the core group.
    pub api_group: String,
    /// `v1`, `v1beta1`, …
    pub api_version: String,
    /// Namespace named in the path, empty for cluster-scoped requests.
    pub namespace: String,
    /// Plural resource name.
    pub resource: String,
    /// `status`, `log`, `exec`, …
    pub subresource: String,
    /// Object name, or the exact `metadata.name` of a field selector on a list or watch.
    pub name: String,
    /// Path segments after the subresource (a `proxy` subresource's target path).
    pub rest: Vec<String>,
    /// Every decoded path segment, to rebuild the path with names translated.
    pub segments: Vec<String>,
    /// Index in `segments` of the namespace name, if the path names one.
    pub namespace_segment: Option<usize>,
    /// The `labelSelector` of a list, watch or deletecollection, as the apiserver reads it.
    pub label_selector: String,
}

/// Why a path cannot be classified safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// The path has `.` or `..` segments, empty inner segments, or an encoded `/` or `\`:
    /// forms that different HTTP stacks resolve differently, so none is accepted.
    #[error("the request path {0:?} is not in canonical form")]
    NotCanonical(String),
    /// A segment is not valid percent-encoded UTF-8.
    #[error("the request path {0:?} is not valid UTF-8 once decoded")]
    BadEncoding(String),
    /// The query cannot be read one way only.
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl RequestInfo {
    /// Classifies `method path?query`. `path` is the raw (still percent-encoded) path.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Self, InfoError> {
        Self::classify(method, path, &Query::parse(query.unwrap_or(""))?)
    }

    /// Classifies `method path` with its query already read.
    pub fn classify(method: &Method, path: &str, query: &Query) -> Result<Self, InfoError> {
        let segments = decode_segments(path)?;
        let mut info = RequestInfo { verb: method.as_str().to_ascii_lowercase(), ..Default::default() };
        info.parse_segments(method, &segments, query);
        info.segments = segments;
        Ok(info)
    }

    /// Whether the query is the target's, not the apiserver's (`.../proxy/...`): it travels as
    /// sent, since Canopy judges nothing in it.
    pub fn is_proxy(&self) -> bool {
        self.verb == "proxy" || self.subresource == "proxy"
    }

    /// The path with the namespace segment replaced by `namespace`, segments re-encoded.
    pub fn path_with_namespace(&self, namespace: &str) -> String {
        let mut path = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            let segment = if Some(i) == self.namespace_segment { namespace } else { segment.as_str() };
            path.push('/');
            path.extend(percent_encoding::utf8_percent_encode(segment, SEGMENT));
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    /// The path of this cross-namespace request made in `namespace` instead: `namespaces/<ns>`
    /// goes before the resource (after `watch` in the deprecated `/watch/` form).
    pub fn path_in_namespace(&self, namespace: &str) -> String {
        let mut at = if self.api_prefix == "apis" { 3 } else { 2 };
        if self.segments.get(at).is_some_and(|s| s == "watch") {
            at += 1;
        }
        let mut segments: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        at = at.min(segments.len());
        segments.splice(at..at, ["namespaces", namespace]);
        let mut path = String::new();
        for segment in segments {
            path.push('/');
            path.extend(percent_encoding::utf8_percent_encode(segment, SEGMENT));
        }
        path
    }

    fn parse_segments(&mut self, method: &Method, segments: &[String], query: &Query) {
        let info = self;
        let mut parts: &[String] = segments;
        let prefix = match parts.first().map(String::as_str) {
            Some(p @ ("api" | "apis")) => p,
            _ => return,
        };
        parts = &parts[1..];
        if prefix == "apis" {
            let Some((group, rest)) = parts.split_first() else { return };
            info.api_group = group.clone();
            parts = rest;
        }
        let Some((version, rest)) = parts.split_first() else { return };
        if rest.is_empty() {
            // `/api/v1` and `/apis/g/v` are discovery documents, not resources.
            return;
        }
        info.api_prefix = prefix.to_owned();
        info.api_version = version.clone();
        parts = rest;
        info.is_resource_request = true;
        info.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_owned();

        // Deprecated `/api/v1/watch/...` and `/api/v1/proxy/...` forms put the verb in the path.
        if let Some(special @ ("watch" | "proxy")) = parts.first().map(String::as_str) {
            if parts.len() < 2 {
                info.is_resource_request = false;
                info.verb = method.as_str().to_ascii_lowercase();
                return;
            }
            info.verb = special.to_owned();
            parts = &parts[1..];
        }

        if parts.first().map(String::as_str) == Some("namespaces")
            && let Some(ns) = parts.get(1)
        {
            info.namespace = ns.clone();
            info.namespace_segment = Some(segments.len() - parts.len() + 1);
            // `/namespaces/x/status` and `/namespaces/x/finalize` are subresources of the
            // namespace object itself; anything else is a resource inside namespace x.
            if parts.len() > 2 && !matches!(parts[2].as_str(), "status" | "finalize") {
                parts = &parts[2..];
            }
        }
        if let Some(resource) = parts.first() {
            info.resource = resource.clone();
        }
        if let Some(name) = parts.get(1) {
            info.name = name.clone();
        }
        if let Some(subresource) = parts.get(2) {
            info.subresource = subresource.clone();
        }
        if parts.len() > 3 {
            info.rest = parts[3..].to_vec();
        }

        if info.name.is_empty() && info.verb == "get" {
            info.verb = if query.is_true("watch") { "watch" } else { "list" }.to_owned();
            if let Some(name) = query.get("fieldSelector").and_then(exact_name_in_selector) {
                info.name = name;
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_owned();
        }
        if matches!(info.verb.as_str(), "list" | "watch" | "deletecollection") {
            info.label_selector = query.get("labelSelector").unwrap_or_default().to_owned();
        }
    }
}

/// `metadata.name=x` (or `==`) as the only term a field selector holds about the name.
fn exact_name_in_selector(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (key, value) = term.split_once("==").or_else(|| term.split_once('='))?;
        (key.trim() == "metadata.name" && !key.ends_with('!')).then(|| value.trim().to_owned())
    })
}

/// Splits a raw path into decoded segments, refusing forms that could be read two ways.
fn decode_segments(path: &str) -> Result<Vec<String>, InfoError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    trimmed
        .split('/')
        .map(|raw| {
            if raw.is_empty() || raw.contains('\\') || encodes_a_separator(raw) {
                return Err(InfoError::NotCanonical(path.to_owned()));
            }
            let decoded = percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| InfoError::BadEncoding(path.to_owned()))?
                .into_owned();
            if decoded == "." || decoded == ".." {
                return Err(InfoError::NotCanonical(path.to_owned()));
            }
            Ok(decoded)
        })
        .collect()
}

/// Whether `raw` holds `%2F` or `%5C` (either case): an encoded `/` or backslash.
fn encodes_a_separator(raw: &str) -> bool {
    raw.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && matches!((w[1], w[2].to_ascii_lowercase()), (b'2', b'f') | (b'5', b'c')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, uri: &str) -> RequestInfo {
        let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
        RequestInfo::parse(&method, path, query).unwrap()
    }

    #[test]
    fn classifies_like_the_apiserver() {
        // (method, uri, verb, group, version, namespace, resource, subresource, name)
        let cases = [
            (Method::GET, "/api/v1/namespaces", "list", "", "v1", "", "namespaces", "", ""),
            (Method::GET, "/api/v1/namespaces/ns", "get", "", "v1", "ns", "namespaces", "", "ns"),
            (Method::PUT, "/api/v1/namespaces/ns/finalize", "update", "", "v1", "ns", "namespaces", "finalize", "ns"),
            (Method::GET, "/api/v1/namespaces/ns/pods", "list", "", "v1", "ns", "pods", "", ""),
            (Method::GET, "/api/v1/namespaces/ns/pods?watch=true", "watch", "", "v1", "ns", "pods", "", ""),
            (
                Method::GET,
                "/api/v1/namespaces/ns/pods?watch=1&fieldSelector=metadata.name%3Dp",
                "watch",
                "",
                "v1",
                "ns",
                "pods",
                "",
                "p",
            ),
            (Method::GET, "/api/v1/pods", "list", "", "v1", "", "pods", "", ""),
            (Method::GET, "/api/v1/watch/namespaces/ns/pods", "watch", "", "v1", "ns", "pods", "", ""),
            (Method::POST, "/api/v1/namespaces/ns/pods/p/exec", "create", "", "v1", "ns", "pods", "exec", "p"),
            (Method::GET, "/api/v1/namespaces/ns/pods/p/log", "get", "", "v1", "ns", "pods", "log", "p"),
            (
                Method::DELETE,
                "/apis/apps/v1/namespaces/ns/deployments",
                "deletecollection",
                "apps",
                "v1",
                "ns",
                "deployments",
                "",
                "",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/ns/deployments/d/scale",
                "patch",
                "apps",
                "v1",
                "ns",
                "deployments",
                "scale",
                "d",
            ),
            (
                Method::GET,
                "/apis/storage.k8s.io/v1/storageclasses/sc",
                "get",
                "storage.k8s.io",
                "v1",
                "",
                "storageclasses",
                "",
                "sc",
            ),
            (
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "create",
                "authorization.k8s.io",
                "v1",
                "",
                "selfsubjectaccessreviews",
                "",
                "",
            ),
        ];
        for (method, uri, verb, group, version, ns, resource, sub, name) in cases {
            let got = info(method, uri);
            assert!(got.is_resource_request, "{uri}");
            assert_eq!(
                (
                    got.verb.as_str(),
                    got.api_group.as_str(),
                    got.api_version.as_str(),
                    got.namespace.as_str(),
                    got.resource.as_str(),
                    got.subresource.as_str(),
                    got.name.as_str()
                ),
                (verb, group, version, ns, resource, sub, name),
                "{uri}"
            );
        }
    }

    #[test]
    fn discovery_and_other_paths_are_not_resource_requests() {
        for uri in
            ["/api", "/apis", "/api/v1", "/apis/apps", "/apis/apps/v1", "/openapi/v3", "/version", "/", "/healthz"]
        {
            let got = info(Method::GET, uri);
            assert!(!got.is_resource_request, "{uri}");
            assert_eq!(got.verb, "get");
        }
    }

    #[test]
    fn proxy_subresource_keeps_its_path() {
        let got = info(Method::GET, "/api/v1/namespaces/ns/services/s:80/proxy/a/b");
        assert_eq!((got.resource.as_str(), got.name.as_str(), got.subresource.as_str()), ("services", "s:80", "proxy"));
        assert_eq!(got.rest, ["a", "b"]);
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for path in [
            "/api/v1/namespaces/a%2Fb/pods",
            "/api/v1/namespaces/../kube-system/pods",
            "/api//v1/pods",
            "/api/v1/namespaces/%2e%2e/pods",
            "/api/v1/namespaces/a%5cb",
            "/api/v1/namespaces/a%2fb/pods",
            "/api/v1/namespaces/a%5Cb",
            "/api/v1/namespaces/a\\b",
        ] {
            assert!(RequestInfo::parse(&Method::GET, path, None).is_err(), "{path}");
        }
    }

    #[test]
    fn the_namespace_segment_can_be_replaced() {
        for (uri, expected) in [
            ("/api/v1/namespaces/dev/pods/p/log", "/api/v1/namespaces/acme-dev/pods/p/log"),
            ("/api/v1/namespaces/dev", "/api/v1/namespaces/acme-dev"),
            ("/api/v1/watch/namespaces/dev/pods", "/api/v1/watch/namespaces/acme-dev/pods"),
            ("/apis/apps/v1/namespaces/d%65v/deployments", "/apis/apps/v1/namespaces/acme-dev/deployments"),
        ] {
            assert_eq!(info(Method::GET, uri).path_with_namespace("acme-dev"), expected, "{uri}");
        }
        let odd = info(Method::GET, "/api/v1/namespaces/dev/services/s:80/proxy/a%20b");
        assert_eq!(odd.path_with_namespace("x"), "/api/v1/namespaces/x/services/s:80/proxy/a%20b");
    }

    #[test]
    fn percent_encoded_segments_are_decoded() {
        let got = info(Method::GET, "/api/v1/namespaces/n%73/pods");
        assert_eq!(got.namespace, "ns");
    }
}
