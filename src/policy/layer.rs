//! The tenancy layer: resolves the view, applies the [`decide`](super::decide) plan to the
//! request (physical namespace in the path, subtree selector on namespace lists and watches,
//! namespace names in JSON bodies) and translates the response back to virtual names. With an
//! empty tree it forwards every caller as themselves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::sync::watch;
use tower::util::BoxCloneService;
use tower::{Layer, Service};

use super::{Plan, decide, resolve_view};
use crate::audit::AuditSlot;
use crate::auth::Identity;
use crate::body::Body;
use crate::discovery::Document;
use crate::fanout::FanOut;
use crate::request::query::{Query, and_label_selector, encode_pairs};
use crate::request::{RequestInfo, ViewPath};
use crate::rewrite::ViewNames;
use crate::rewrite::selector::{map_field_selector, namespace_equal};
use crate::status::Status;
use crate::transform::negotiate::{Answer, Encoding};
use crate::transform::{self, DocumentMap, Translation};
use crate::tree::{NodeId, Tree};
use serde_json::Value;

use super::links::LinkGuard;
use super::mask_gate::MaskGate;
use super::namespace_gate::NamespaceGate;
use super::namespaces::{Creation, Creations};
use super::protobuf_gate::ProtobufGate;
use super::reference_gate::ReferenceGate;
use super::review::{self, Review, Verdict};
use super::revoke::{Revocation, Standing};
use super::secret_gate::{Lookup, SecretCheck, SecretGate};
use super::write::{WriteDriver, WriteGate};
use crate::mask::read::ReadMask;
use crate::mask::secrets::SecretFilter;
use crate::mask::{Mask, MaskRule};

/// Adds tenancy in front of a service.
#[derive(Clone)]
pub struct TenancyLayer {
    trees: watch::Receiver<Arc<Tree>>,
    creations: Creations,
}

impl TenancyLayer {
    /// Decides each request against the newest tree in `trees`.
    pub fn new(trees: watch::Receiver<Arc<Tree>>) -> Self {
        Self { trees, creations: Creations::default() }
    }
}

impl<S> Layer<S> for TenancyLayer {
    type Service = TenancyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenancyService { trees: self.trees.clone(), creations: self.creations.clone(), inner }
    }
}

/// See [`TenancyLayer`].
#[derive(Clone)]
pub struct TenancyService<S> {
    trees: watch::Receiver<Arc<Tree>>,
    creations: Creations,
    inner: S,
}

impl<S> Service<Request<Body>> for TenancyService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // One snapshot per request: a reload is in force for the very next request.
        let tree = self.trees.borrow().clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let trees = self.trees.clone();
        let creations = self.creations.clone();
        Box::pin(async move {
            if tree.nodes.is_empty() {
                if request.extensions().get::<ViewPath>().is_some_and(|v| v.0.is_some()) {
                    return Err(Status::not_found("this Canopy has no tenancy tree, so no views"));
                }
                return inner.call(request).await;
            }
            let revocation = open_stream_revocation(&tree, trees, &mut request);
            let response = answer(&tree, &creations, request, inner).await?;
            Ok(match revocation {
                Some(revocation) => revocation.end_watch(response),
                None => response,
            })
        })
    }
}

/// For a request that opens a long stream (a watch, an upgraded exec, attach or port-forward),
/// what ends it when a reload changes its standing; also put in the request for the tunnel.
fn open_stream_revocation(
    tree: &Tree,
    trees: watch::Receiver<Arc<Tree>>,
    request: &mut Request<Body>,
) -> Option<Revocation> {
    let info = request.extensions().get::<RequestInfo>()?;
    let streams = info.verb == "watch" || crate::request::headers::is_upgrade(request.headers());
    if !streams {
        return None;
    }
    let identity = request.extensions().get::<Identity>()?.clone();
    let view_path = request.extensions().get::<ViewPath>().cloned().unwrap_or_default();
    let info = info.clone();
    let standing = Standing::of(tree, &identity, &info, &view_path)?;
    let revocation = Revocation::watch(trees, identity, info, view_path, standing);
    request.extensions_mut().insert(revocation.stream_end());
    Some(revocation)
}

/// Confines `request` and answers it through `inner`; an answer about objects or discovery is
/// rendered by Canopy in the encoding the client negotiated, never passed on as upstream sent it.
async fn answer<S>(
    tree: &Arc<Tree>,
    creations: &Creations,
    mut request: Request<Body>,
    inner: S,
) -> Result<Response<Body>, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let info = request.extensions().get::<RequestInfo>().ok_or_else(|| Status::internal("unclassified request"))?;
    let rendered = renders(info, request.headers());
    let kind = match (info.verb == "watch", Document::of(info)) {
        (true, _) => Answer::Watch,
        (false, Some(Document::OpenApi { group: None })) => Answer::OpenApiV2,
        (false, _) => Answer::Document,
    };
    let method = request.method().clone();
    let encoding = match rendered {
        true => Some(transform::negotiate::ask_upstream(request.headers_mut(), kind)?),
        false => None,
    };
    if let Some(encoding) = encoding {
        request.extensions_mut().insert(encoding);
    }
    let warnings = Warnings::default();
    request.extensions_mut().insert(warnings.clone());
    let response = confined_answer(tree, creations, request, inner).await?;
    let mut response = match encoding {
        Some(encoding) => transform::render::render(&method, response, encoding),
        None => response,
    };
    for warning in warnings.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        // RFC 7234's form, as the apiserver writes its warnings.
        let text = format!("299 - {}", serde_json::Value::from(warning.as_str()));
        if let Ok(value) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
    Ok(response)
}

/// Warnings Canopy's reading of the request gives, as the apiserver would have given them.
#[derive(Clone, Default)]
struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

/// Whether the answer is about objects or discovery, so Canopy renders it. Logs, proxied
/// targets and upgraded streams are the caller's own bytes; `/version` and health checks hold
/// nothing of any tenant.
fn renders(info: &RequestInfo, headers: &http::HeaderMap) -> bool {
    if !info.is_resource_request {
        return Document::of(info).is_some();
    }
    let raw = info.is_proxy() || matches!(info.subresource.as_str(), "log" | "exec" | "attach" | "portforward");
    !raw && !crate::request::headers::is_upgrade(headers)
}

/// Confines `request` and answers it through `inner`.
async fn confined_answer<S>(
    tree: &Arc<Tree>,
    creations: &Creations,
    request: Request<Body>,
    mut inner: S,
) -> Result<Response<Body>, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    match confine(tree, request, inner.clone()).await? {
        Confined::Forward(request, translation) => {
            let response = inner.call(request).await?;
            Ok(match translation {
                Some(translation) => transform::response(response, translation),
                None => response,
            })
        }
        Confined::Across(fan_out) => fan_out.serve(inner).await,
        Confined::Mapped(request, map, translation) => {
            let response = inner.call(request).await?;
            Ok(match translation {
                Some(translation) if !response.status().is_success() => transform::response(response, translation),
                _ => transform::map_document(response, map),
            })
        }
        Confined::Answer(response) => Ok(response),
        Confined::Judged(request, translation, driver) => {
            driver.serve(BoxCloneService::new(inner), request, translation).await
        }
        Confined::Secret(request, translation, gate, lookup) => gate.serve(lookup, inner, request, translation).await,
        Confined::CreateNamespace(creation, translation) => creation.run(tree, creations, inner, translation).await,
    }
}

/// A confined request.
enum Confined {
    /// Forward the rewritten request and translate the answer as told (`None`: nothing to
    /// translate).
    Forward(Request<Body>, Option<Translation>),
    /// Answer a list or watch across the view's namespaces.
    Across(FanOut),
    /// Forward, then rewrite a successful JSON answer with the function (discovery, reviews);
    /// failures are translated.
    Mapped(Request<Body>, DocumentMap, Option<Translation>),
    /// Answered by Canopy itself.
    Answer(Response<Body>),
    /// Judge the write, then commit exactly what was judged (see [`WriteDriver`]).
    Judged(Request<Body>, Translation, WriteDriver),
    /// A read or delete of one Secret in a view that limits secret types.
    Secret(Request<Body>, Translation, SecretGate, Lookup),
    /// Create a tenant's namespace within the view's quota.
    CreateNamespace(Creation, Translation),
}

/// Applies the tenancy decision to `request`; `inner` answers the lookups some checks make as
/// the caller.
async fn confine<S>(tree: &Arc<Tree>, mut request: Request<Body>, inner: S) -> Result<Confined, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone,
{
    let identity = request.extensions().get::<Identity>().cloned().ok_or_else(|| Status::internal("no identity"))?;
    let info =
        request.extensions().get::<RequestInfo>().cloned().ok_or_else(|| Status::internal("unclassified request"))?;
    let view_path = request.extensions().get::<ViewPath>().cloned().unwrap_or_default();
    let view = resolve_view(tree, &identity, &view_path)?;
    AuditSlot::on(&request, |r| r.view = Some(tree.nodes[view].path.clone()));
    let Plan { namespace, selector, as_canopy, across, create_namespace, rule } = decide(tree, view, &identity, &info)?;
    AuditSlot::on(&request, |r| {
        r.decision = "allowed";
        r.reason = rule.to_owned();
        r.physical_namespace = namespace.as_ref().map(|(physical, _)| physical.clone());
    });
    if as_canopy {
        request.extensions_mut().insert(super::AsCanopy);
    }
    if !info.is_resource_request {
        let Some(document) = Document::of(&info) else { return Ok(Confined::Forward(request, None)) };
        let ceiling = tree.nodes[view].ceiling.clone();
        if !document.visible(&ceiling) {
            return Err(Status::not_found("the server could not find the requested resource"));
        }
        let map = match request.extensions().get::<Encoding>() {
            Some(Encoding::OpenApiV2Protobuf) => DocumentMap::OpenApiV2Protobuf(ceiling),
            _ => DocumentMap::Json(Box::new(move |doc| document.filter(&ceiling, doc))),
        };
        return Ok(Confined::Mapped(request, map, None));
    }
    // The body is read once, here: every check below and upstream see Canopy's reading of it.
    if renders(&info, request.headers()) {
        let warning;
        (request, warning) = transform::reading::canonical(request).await?;
        if let (Some(warning), Some(slot)) = (warning, request.extensions().get::<Warnings>()) {
            slot.0.lock().unwrap_or_else(|e| e.into_inner()).push(warning);
        }
    }
    let names = ViewNames::new(tree, view);
    let mut query: Vec<(String, String)> = Query::parse(request.uri().query().unwrap_or(""))?.into_pairs();
    if let Some(selector) = &selector {
        and_label_selector(&mut query, selector);
    }
    if let Some((_, fields)) = query.iter_mut().find(|(k, _)| k == "fieldSelector") {
        let namespaces = info.resource == "namespaces";
        let prefix = &tree.nodes[view].prefix;
        // A namespace created after this snapshot still has the physical name its view gives it;
        // the subtree selector keeps the answer confined either way.
        let physical = |v: &str| names.to_physical(v).or_else(|| namespaces.then(|| format!("{prefix}{v}")));
        *fields = map_field_selector(fields, namespaces, &physical);
    }
    // Masked fields are stripped from the answer; Tables are read with whole objects to find
    // the cells showing them. Then secrets of other types are filtered, read whole to be judged.
    // A namespace answers to the node owning it (its ceiling, secret types and masks, which
    // narrow the view's); a request across namespaces to every node of the view's subtree.
    let governing = namespace.as_ref().and_then(|(physical, _)| tree.owner(physical)).unwrap_or(view);
    let role = tree.member_at(&identity, view).map(|m| m.role.as_str());
    let rules: Vec<Arc<MaskRule>> = if across {
        let mut rules: Vec<Arc<MaskRule>> = Vec::new();
        for rule in tree.subtree(view).flat_map(|n| tree.nodes[n].masks.iter()) {
            if !rules.iter().any(|known| Arc::ptr_eq(known, rule)) {
                rules.push(Arc::clone(rule));
            }
        }
        rules
    } else {
        tree.nodes[governing].masks.clone()
    };
    let mask = Mask::of(&rules, &tree.nodes[governing].path, &info.api_group, &info.resource, role)
        .filter(|_| crate::mask::covers_subresource(&info.subresource));
    let read_mask =
        mask.as_ref().map(|mask| ReadMask::for_request(mask, &info.resource, &info.verb, &mut query)).transpose()?;
    let secrets = if across {
        SecretFilter::across(tree, view, &info, &mut query)
    } else {
        SecretFilter::for_request(&tree.nodes[governing].ceiling, &info, &mut query)
    };
    let mut path = match &namespace {
        Some((physical, _)) => info.path_with_namespace(physical),
        None => request.uri().path().to_owned(),
    };
    if !query.is_empty() {
        path = format!("{path}?{}", encode_pairs(&query));
    }
    *request.uri_mut() = path.parse().map_err(|_| Status::bad_request("invalid request URI"))?;

    let translation = Translation {
        tree: Arc::clone(tree),
        view,
        namespace: namespace.clone(),
        watch: info.verb == "watch",
        namespaces: info.resource == "namespaces",
        secrets,
        mask: read_mask,
    };
    if create_namespace {
        let (request, physical) = super::namespaces::create_request(tree, view, request).await?;
        let virtual_name = physical.strip_prefix(&tree.nodes[view].prefix).unwrap_or(&physical).to_owned();
        let translation = Translation { namespace: Some((physical.clone(), virtual_name)), ..translation };
        return Ok(Confined::CreateNamespace(Creation { request, physical, view }, translation));
    }
    if let Some(review) = Review::of(&info) {
        return review_request(tree, view, &identity, request, review, translation, inner).await;
    }
    if across {
        let (parts, _) = request.into_parts();
        let mut namespaces = across_namespaces(tree, view, &info);
        // `--field-selector metadata.namespace=X` narrows the fan-out to X.
        let fields = query.iter().find(|(k, _)| k == "fieldSelector").map(|(_, v)| v.as_str()).unwrap_or("");
        if let Some(only) = namespace_equal(fields) {
            namespaces.retain(|n| *n == only);
        }
        return Ok(Confined::Across(FanOut { namespaces, info, identity, headers: parts.headers, query, translation }));
    }
    let request = transform::request(request, &|virtual_name: &str| names.to_physical(virtual_name)).await?;
    let node = &tree.nodes[governing];
    let secrets = SecretGate::of(&node.ceiling, &node.path, &info, &identity, &namespace)?;
    // Linked copies are read-only: checked before anything is written, dry runs included.
    let request = match LinkGuard::of(tree, view, &info, &identity, &namespace) {
        Some(guard) => guard.check(inner, request).await?,
        None => request,
    };
    // Masks first: an update gets the values the view hid back before anything judges it.
    let mut gates: Vec<Box<dyn WriteGate>> = Vec::new();
    if let Some(mask) = &mask
        && let Some(gate) = MaskGate::of(mask, &info, &identity)?
    {
        gates.push(Box::new(gate));
    }
    match secrets {
        Some(SecretCheck::Write(gate)) => gates.push(Box::new(gate)),
        Some(SecretCheck::Lookup(gate, lookup)) => return Ok(Confined::Secret(request, translation, gate, lookup)),
        None => {}
    }
    if let Some(gate) = ReferenceGate::of(tree, governing, &info, &identity, &namespace) {
        gates.push(Box::new(gate));
    }
    if let Some(gate) = NamespaceGate::of(tree, governing, &info) {
        gates.push(Box::new(gate));
    }
    // A protobuf body is read only where its own namespace is: what else it names is judged on
    // the dry-run result.
    if transform::is_protobuf(request.headers())
        && namespace.is_some()
        && matches!(info.verb.as_str(), "create" | "update")
    {
        gates.push(Box::new(ProtobufGate { tree: Arc::clone(tree), view }));
    }
    if !gates.is_empty() {
        return Ok(Confined::Judged(request, translation, WriteDriver { gates, identity }));
    }
    Ok(Confined::Forward(request, Some(translation)))
}

/// The namespaces a request across the view reaches: the subtree's, but those whose owner's
/// ceiling does not allow the request.
fn across_namespaces(tree: &Tree, view: NodeId, info: &RequestInfo) -> Vec<String> {
    let mut namespaces = tree.subtree_namespaces(view);
    namespaces.retain(|n| {
        tree.owner(n).is_none_or(|owner| tree.nodes[owner].ceiling.allows(&info.api_group, &info.resource, &info.verb))
    });
    namespaces
}

/// Decides a self access review against the tree first, or narrows a self rules review to the
/// ceiling (see [`super::review`]).
async fn review_request<S>(
    tree: &Arc<Tree>,
    view: NodeId,
    identity: &Identity,
    request: Request<Body>,
    review: Review,
    translation: Translation,
    inner: S,
) -> Result<Confined, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone,
{
    let (mut parts, body) = request.into_parts();
    let document = transform::read_review(body, &mut parts.headers).await?;
    if review == Review::Access {
        let answer = match review::verdict(tree, view, identity, &document) {
            Verdict::Denied(reason) => review::denied(document, &reason),
            Verdict::Allowed(reason) => review::allowed(document, reason),
            Verdict::Across(info) => {
                let namespaces = across_namespaces(tree, view, &info);
                review_across(tree, view, identity, &parts, document, &namespaces, inner).await?
            }
            Verdict::Upstream => return review_upstream(tree, view, parts, document, review, translation),
        };
        return Ok(Confined::Answer(answer));
    }
    review_upstream(tree, view, parts, document, review, translation)
}

/// A self access review of a request across the view (`-A`): allowed when upstream allows it in
/// every namespace the fan-out reaches, asked as the caller, one namespace at a time.
async fn review_across<S>(
    tree: &Tree,
    view: NodeId,
    identity: &Identity,
    parts: &http::request::Parts,
    document: Value,
    namespaces: &[String],
    inner: S,
) -> Result<Response<Body>, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone,
{
    use tower::ServiceExt;
    let names = ViewNames::new(tree, view);
    for physical in namespaces {
        let mut asked = document.clone();
        asked["spec"]["resourceAttributes"]["namespace"] = physical.as_str().into();
        let bytes = serde_json::to_vec(&asked).map_err(|e| Status::internal(e.to_string()))?;
        let mut request = Request::builder()
            .method(http::Method::POST)
            .uri(parts.uri.path())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(crate::body::full(bytes))
            .map_err(|_| Status::bad_request("invalid review path"))?;
        request.extensions_mut().insert(identity.clone());
        let answer = inner.clone().oneshot(request).await?;
        if !answer.status().is_success() {
            let virtual_name = names.to_virtual(physical).unwrap_or_default();
            return Err(Status::from_code(
                answer.status(),
                format!("the access review in namespace {virtual_name:?} answered {}", answer.status()),
            ));
        }
        let answer = transform::read_bytes(answer.into_body()).await?;
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|e| Status::bad_gateway(format!("the upstream review is not JSON: {e}")))?;
        if answer.pointer("/status/allowed") != Some(&Value::Bool(true)) {
            let virtual_name = names.to_virtual(physical).unwrap_or_default();
            return Ok(review::denied(document, &format!("not allowed in namespace {virtual_name:?} of the view")));
        }
    }
    Ok(review::allowed(document, "allowed in every namespace of the view"))
}

/// A review upstream RBAC decides, its names translated both ways.
fn review_upstream(
    tree: &Arc<Tree>,
    view: NodeId,
    parts: http::request::Parts,
    document: Value,
    review: Review,
    translation: Translation,
) -> Result<Confined, Status> {
    let names = ViewNames::new(tree, view);
    let virtual_name = document.pointer("/spec/resourceAttributes/namespace").or(document.pointer("/spec/namespace"));
    let namespace = virtual_name.and_then(Value::as_str).and_then(|v| Some((names.to_physical(v)?, v.to_owned())));
    let request = transform::with_document(parts, document, &|v: &str| names.to_physical(v))?;
    let ceiling = tree.nodes[view].ceiling.clone();
    let failures = translation.clone();
    let map = DocumentMap::Json(Box::new(move |doc| {
        translation.apply(doc);
        match review {
            Review::Access => {
                if let Some((physical, virtual_name)) = &namespace {
                    review::scrub_reason(doc, physical, virtual_name);
                }
            }
            Review::Rules => review::narrow_rules(&ceiling, doc),
        }
    }));
    Ok(Confined::Mapped(request, map, Some(failures)))
}
