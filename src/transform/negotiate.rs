//! Content negotiation in a view. Every answer a tenant receives there is Canopy's own, rendered
//! from JSON that Canopy has read and filtered, so upstream is always asked for JSON (keeping the
//! client's `as=Table`, `as=PartialObjectMetadataList` and discovery alternatives) and the
//! client's `Accept` decides only how Canopy renders what it filtered: JSON, YAML for clients
//! that prefer it, or protobuf for PartialObjectMetadata(List), whose schema Canopy encodes
//! itself ([`super::protobuf_meta`]). A client that accepts nothing Canopy produces gets `406`,
//! as the apiserver answers an encoding it does not serve; nothing ever passes through unread.

use http::{HeaderMap, HeaderValue, header};

use super::protobuf_meta::MEDIA_TYPE as PROTOBUF;
use crate::discovery::openapi_v2_protobuf::MEDIA_TYPES as OPENAPI_V2_PROTOBUF;
use crate::status::Status;

/// How Canopy renders an answer for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `application/json` (watches: `application/json;stream=watch` as upstream labels them).
    #[default]
    Json,
    /// `application/yaml`, from the filtered JSON.
    Yaml,
    /// The OpenAPI v2 document in protobuf, filtered as upstream sent it.
    OpenApiV2Protobuf,
    /// PartialObjectMetadata(List) in Kubernetes protobuf, encoded from the filtered JSON;
    /// `or_json` when the client accepts JSON too, which it then gets for any other kind.
    MetadataProtobuf { or_json: bool },
}

/// What kind of answer a request gets, which decides what it can be rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Objects, lists and discovery documents.
    Document,
    /// A watch stream: JSON only (the apiserver streams JSON or protobuf, never YAML).
    Watch,
    /// `/openapi/v2`, which is also served in protobuf.
    OpenApiV2,
}

/// The outcome of reading a client's `Accept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// What the client receives.
    pub encoding: Encoding,
    /// What upstream is asked for: JSON alternatives only, in the client's order.
    pub upstream_accept: String,
}

/// One media range of an `Accept` header.
struct Range<'a> {
    essence: String,
    /// Parameters other than `q`, as sent (`as=Table;v=v1;g=meta.k8s.io`).
    params: Vec<&'a str>,
    quality: f32,
}

fn ranges(accept: &str) -> impl Iterator<Item = Range<'_>> {
    accept.split(',').map(str::trim).filter(|r| !r.is_empty()).map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut quality = 1.0;
        let mut params = Vec::new();
        for param in parts.filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("q") => {
                    quality = value.trim().parse().unwrap_or(0.0);
                }
                _ => params.push(param),
            }
        }
        Range { essence, params, quality }
    })
}

/// What Canopy renders for a range it can produce; `None` for ranges it cannot.
fn produced(range: &Range<'_>, answer: Answer) -> Option<Encoding> {
    match range.essence.as_str() {
        "application/json" | "*/*" | "application/*" => Some(Encoding::Json),
        "application/yaml" if answer != Answer::Watch => Some(Encoding::Yaml),
        PROTOBUF if answer != Answer::OpenApiV2 && asks_metadata(range) => {
            Some(Encoding::MetadataProtobuf { or_json: false })
        }
        essence if answer == Answer::OpenApiV2 && OPENAPI_V2_PROTOBUF.contains(&essence) => {
            Some(Encoding::OpenApiV2Protobuf)
        }
        _ => None,
    }
}

/// Whether `range` names `meta.k8s.io/v1` PartialObjectMetadata or PartialObjectMetadataList.
fn asks_metadata(range: &Range<'_>) -> bool {
    let param = |name: &str| {
        range.params.iter().find_map(|p| {
            let (key, value) = p.split_once('=')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    };
    matches!(param("as"), Some("PartialObjectMetadata" | "PartialObjectMetadataList"))
        && param("g") == Some("meta.k8s.io")
        && param("v") == Some("v1")
}

/// Reads `accept` (absent: anything) for `answer`.
pub fn negotiate(accept: Option<&str>, answer: Answer) -> Result<Negotiated, Status> {
    let accept = accept.map(str::trim).filter(|a| !a.is_empty()).unwrap_or("*/*");
    let mut best: Option<(f32, Encoding)> = None;
    let mut upstream: Vec<String> = Vec::new();
    let mut json = false;
    for range in ranges(accept) {
        let Some(encoding) = produced(&range, answer) else { continue };
        if range.quality <= 0.0 {
            continue;
        }
        json |= encoding == Encoding::Json;
        if best.is_none_or(|(quality, _)| range.quality > quality) {
            best = Some((range.quality, encoding));
        }
        let params = range.params.iter().filter(|p| !p.to_ascii_lowercase().starts_with("stream="));
        let alternative = std::iter::once("application/json").chain(params.copied()).collect::<Vec<_>>().join(";");
        if !upstream.contains(&alternative) {
            upstream.push(alternative);
        }
    }
    let Some((_, mut encoding)) = best else {
        return Err(not_acceptable(accept));
    };
    if let Encoding::MetadataProtobuf { or_json } = &mut encoding {
        *or_json = json;
    }
    if encoding == Encoding::OpenApiV2Protobuf {
        return Ok(Negotiated { encoding, upstream_accept: OPENAPI_V2_PROTOBUF[0].to_owned() });
    }
    Ok(Negotiated { encoding, upstream_accept: upstream.join(",") })
}

/// Negotiates for the request whose headers are `headers`: upstream is asked for JSON (or the
/// OpenAPI v2 protobuf Canopy filters), without compression or conditional answers (they would
/// describe upstream's bytes, not Canopy's).
pub fn ask_upstream(headers: &mut HeaderMap, answer: Answer) -> Result<Encoding, Status> {
    let accept = headers.get(header::ACCEPT).map(|v| v.to_str().map_err(|_| not_acceptable("(not ASCII)")));
    let negotiated = negotiate(accept.transpose()?, answer)?;
    let value = HeaderValue::from_str(&negotiated.upstream_accept).map_err(|_| not_acceptable("(unreadable)"))?;
    headers.insert(header::ACCEPT, value);
    headers.remove(header::ACCEPT_ENCODING);
    headers.remove(header::IF_NONE_MATCH);
    headers.remove(header::IF_MODIFIED_SINCE);
    Ok(negotiated.encoding)
}

/// Whether the Accept Canopy sends upstream ([`ask_upstream`]) asks first for metadata alone
/// (`as=PartialObjectMetadata`, `as=PartialObjectMetadataList`).
pub fn asks_metadata_only(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let first = accept.split(',').next().unwrap_or("");
    first.split(';').skip(1).any(|param| {
        let param = param.trim().to_ascii_lowercase();
        param == "as=partialobjectmetadata" || param == "as=partialobjectmetadatalist"
    })
}

/// Asks upstream for whole objects in JSON, which Canopy cuts down to what was asked for.
pub fn ask_whole_objects(headers: &mut HeaderMap) {
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
}

fn not_acceptable(accept: &str) -> Status {
    Status::not_acceptable(format!(
        "only the following media types are accepted in a view: application/json, application/yaml, \
         and {PROTOBUF} as PartialObjectMetadata(List) of meta.k8s.io/v1; asked for {accept}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiated(accept: &str, watch: bool) -> Option<(Encoding, String)> {
        let answer = if watch { Answer::Watch } else { Answer::Document };
        negotiate(Some(accept), answer).ok().map(|n| (n.encoding, n.upstream_accept))
    }

    #[test]
    fn json_alternatives_go_upstream_in_order() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiated(kubectl, false), Some((Encoding::Json, kubectl.to_owned())));
        assert_eq!(
            negotiated("application/vnd.kubernetes.protobuf, */*", false),
            Some((Encoding::Json, "application/json".to_owned()))
        );
        assert_eq!(negotiate(None, Answer::Watch).unwrap().upstream_accept, "application/json");
    }

    #[test]
    fn metadata_only_answers_are_recognised_by_the_first_alternative() {
        let mut headers = HeaderMap::new();
        let metadata = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        headers.insert(header::ACCEPT, HeaderValue::from_static(metadata));
        assert!(asks_metadata_only(&headers));
        ask_whole_objects(&mut headers);
        assert!(!asks_metadata_only(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json;as=Table;g=meta.k8s.io;v=v1"));
        assert!(!asks_metadata_only(&headers));
    }

    #[test]
    fn yaml_is_rendered_from_json() {
        assert_eq!(negotiated("application/yaml", false), Some((Encoding::Yaml, "application/json".to_owned())));
        assert_eq!(
            negotiated("application/json;q=0.5, application/yaml", false),
            Some((Encoding::Yaml, "application/json".to_owned()))
        );
        assert_eq!(negotiated("application/yaml, application/json", false).map(|n| n.0), Some(Encoding::Yaml));
        assert_eq!(negotiated("application/json, application/yaml", false).map(|n| n.0), Some(Encoding::Json));
    }

    #[test]
    fn what_canopy_cannot_render_is_not_acceptable() {
        for (accept, watch) in [
            ("application/vnd.kubernetes.protobuf", false),
            ("application/cbor", false),
            ("text/html", false),
            ("application/yaml", true),
            ("application/json;q=0", false),
            ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io", false),
            ("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;v=v1beta1;g=meta.k8s.io", false),
        ] {
            let answer = if watch { Answer::Watch } else { Answer::Document };
            let error = negotiate(Some(accept), answer).unwrap_err();
            assert_eq!(error.code, http::StatusCode::NOT_ACCEPTABLE, "{accept}");
        }
    }

    #[test]
    fn metadata_is_served_in_protobuf_where_it_is_preferred() {
        let client_go = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,\
                         application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        let upstream = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        let or_json = Encoding::MetadataProtobuf { or_json: true };
        assert_eq!(negotiated(client_go, false), Some((or_json, upstream.to_owned())));
        assert_eq!(negotiated(client_go, true), Some((or_json, upstream.to_owned())));
        let only = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        let upstream = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(negotiated(only, false), Some((Encoding::MetadataProtobuf { or_json: false }, upstream.to_owned())));
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(only));
        ask_upstream(&mut headers, Answer::Document).unwrap();
        assert!(asks_metadata_only(&headers));
    }

    #[test]
    fn watch_stream_parameters_are_upstream_s_to_choose() {
        assert_eq!(
            negotiated("application/json;stream=watch", true),
            Some((Encoding::Json, "application/json".to_owned()))
        );
    }

    #[test]
    fn openapi_v2_is_served_in_protobuf_where_it_is_preferred() {
        let client_go = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        let negotiated = negotiate(Some(client_go), Answer::OpenApiV2).unwrap();
        assert_eq!(negotiated.encoding, Encoding::OpenApiV2Protobuf);
        assert_eq!(negotiated.upstream_accept, client_go);
        let either = "application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf;q=0.9";
        assert_eq!(negotiate(Some(either), Answer::OpenApiV2).unwrap().encoding, Encoding::Json);
        // Only that document is offered in protobuf.
        assert!(negotiate(Some(client_go), Answer::Document).is_err());
    }
}
