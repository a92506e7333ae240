//! Phase 5: names both ways. The request's virtual names become physical ones — in the path,
//! the query (selectors) and the body, which is read here once ([`transform::reading`]) — and
//! every answer the later phases do not give in the view's terms themselves ([`InView`]) is
//! translated back, masked and filtered by secret type on its way out.

use std::sync::Arc;

use http::{Request, Response};

use super::negotiate::{Warnings, renders};
use super::{Decision, InView, Inner, Phase, Rewritten};
use crate::body::Body;
use crate::mask::read::ReadMask;
use crate::mask::secrets::SecretFilter;
use crate::mask::{Mask, MaskRule};
use crate::policy::namespaces::create_request;
use crate::policy::review::Review;
use crate::request::query::{Query, and_label_selector, encode_pairs};
use crate::rewrite::ViewNames;
use crate::rewrite::selector::map_field_selector;
use crate::status::Status;
use crate::transform::negotiate::{ask_whole_objects, asks_metadata_only};
use crate::transform::{self, Translation};

/// Rewrites resource requests in a view, and translates their answers.
#[derive(Clone, Default)]
pub struct Rewrite;

impl Phase for Rewrite {
    async fn serve<S: Inner>(&self, request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        let decision = match request.extensions().get::<Arc<Decision>>() {
            Some(decision) if decision.info.is_resource_request => Arc::clone(decision),
            _ => return inner.call(request).await,
        };
        let (mut request, rewritten) = rewrite(&decision, request).await?;
        let translation = rewritten.translation.clone();
        request.extensions_mut().insert(Arc::new(rewritten));
        let response = inner.call(request).await?;
        Ok(match response.extensions().get::<InView>() {
            Some(_) => response,
            None => transform::response(response, translation),
        })
    }
}

/// `request` as it goes upstream, and how its answer comes back.
async fn rewrite(decision: &Decision, mut request: Request<Body>) -> Result<(Request<Body>, Rewritten), Status> {
    let Decision { tree, view, plan, governing, identity, info } = decision;
    let (view, governing) = (*view, *governing);
    // The body is read once, here: every check below and upstream see Canopy's reading of it.
    if renders(info, request.headers()) {
        let warning;
        (request, warning) = transform::reading::canonical(request).await?;
        if let (Some(warning), Some(warnings)) = (warning, request.extensions().get::<Warnings>()) {
            warnings.push(warning);
        }
    }
    let names = ViewNames::new(tree, view);
    let mut query: Vec<(String, String)> = Query::parse(request.uri().query().unwrap_or(""))?.into_pairs();
    if let Some(selector) = &plan.selector {
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
    // A request across namespaces answers to every node of the view's subtree.
    let role = tree.member_at(identity, view).map(|m| m.role.as_str());
    let rules: Vec<Arc<MaskRule>> = if plan.across {
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
    let mut secrets = match plan.across {
        true => SecretFilter::across(tree, view, info, &mut query),
        false => SecretFilter::for_request(&tree.nodes[governing].ceiling, info, &mut query),
    };
    // Metadata alone does not tell a secret's type: upstream gives whole ones, cut down after.
    if let Some(filter) = secrets.take_if(|_| asks_metadata_only(request.headers())) {
        ask_whole_objects(request.headers_mut());
        secrets = Some(filter.metadata_only());
    }
    let mut path = match &plan.namespace {
        Some((physical, _)) => info.path_with_namespace(physical),
        None => request.uri().path().to_owned(),
    };
    if !query.is_empty() {
        path = format!("{path}?{}", encode_pairs(&query));
    }
    *request.uri_mut() = path.parse().map_err(|_| Status::bad_request("invalid request URI"))?;
    let mut translation = Translation {
        tree: Arc::clone(tree),
        view,
        namespace: plan.namespace.clone(),
        watch: info.verb == "watch",
        namespaces: info.resource == "namespaces",
        secrets,
        mask: read_mask,
    };
    if plan.create_namespace {
        // The new namespace's name, its tree labels and the view's own prefix.
        let physical;
        (request, physical) = create_request(tree, view, request).await?;
        let virtual_name = physical.strip_prefix(&tree.nodes[view].prefix).unwrap_or(&physical).to_owned();
        translation.namespace = Some((physical, virtual_name));
    } else if Review::of(info).is_none() && !plan.across {
        // A review's namespaces are the review phase's to translate: it answers most itself.
        request = transform::request(request, &|virtual_name: &str| names.to_physical(virtual_name)).await?;
    }
    Ok((request, Rewritten { translation, query, mask }))
}
