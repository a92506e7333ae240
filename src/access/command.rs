//! The two commands end to end: check the arguments against the tree and discovery, read the
//! namespaces tenants created (so `-n` may name one), decide what the tree decides, ask upstream
//! the rest in one batch, and render a table or JSON.

use std::sync::Arc;

use super::matrix::{self, Matrix, Place};
use super::resources::{self, ApiResource};
use super::upstream::{self, Reviewer};
use super::who_can::{self, Report};
use super::{AccessError, identity, questions};
use crate::config::Config;
use crate::policy::resolve_view;
use crate::request::ViewPath;
use crate::request::scope::ScopeTable;
use crate::rewrite::ViewNames;
use crate::tree::live::Snapshot;
use crate::tree::{NodeId, ScopesReadOnce, Tree};

/// How a command prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `canopy who-can VERB RESOURCE [-n NS] [--view PATH]`.
#[derive(Debug, Clone)]
pub struct WhoCanArgs {
    pub verb: String,
    pub resource: String,
    /// Virtual in `view`; physical without one.
    pub namespace: Option<String>,
    pub view: Option<String>,
    pub format: Format,
}

/// `canopy access-matrix --user U [--groups G,…] [-n NS] [--view PATH] [--explain]`.
#[derive(Debug, Clone)]
pub struct MatrixArgs {
    pub user: String,
    pub groups: Vec<String>,
    /// Virtual in `view`; physical without one.
    pub namespace: Option<String>,
    pub view: Option<String>,
    pub format: Format,
    /// List the value bounds narrowing the allowed writes under the table.
    pub explain: bool,
}

/// What the commands share: the tree with the upstream namespaces, the frame view, discovery.
struct Context {
    tree: Tree,
    frame: Option<NodeId>,
    reviewer: Reviewer,
    resources: Vec<ApiResource>,
}

impl Context {
    async fn load(config: &Config, view: Option<&str>) -> Result<Self, AccessError> {
        if config.tree.nodes.is_empty() {
            return Err(AccessError::NoTree(config.file.display().to_string()));
        }
        let frame = view
            .map(|path| config.tree.node(path).ok_or_else(|| AccessError::UnknownView(path.to_owned())))
            .transpose()?;
        let reviewer = Reviewer::connect(&config.upstream).await?;
        let namespaces = crate::upstream::list_namespaces(&config.upstream).await?;
        let mut tree = (*config.tree).clone();
        tree.live = Some(Arc::new(Snapshot::new(&tree, &namespaces)));
        let resources = reviewer.discover().await?;
        // Scope as this apiserver's discovery says, as the proxy decides (custom resources too).
        let mut scopes = ScopeTable::default();
        resources.iter().for_each(|r| scopes.insert(&r.group, &r.resource, !r.namespaced));
        tree.scopes = Some(Arc::new(ScopesReadOnce(Arc::new(scopes))));
        Ok(Context { tree, frame, reviewer, resources })
    }

    /// The physical namespace `-n` names: in the frame view, or as is without one.
    fn physical(&self, namespace: &str) -> Result<String, AccessError> {
        match self.frame {
            Some(frame) => ViewNames::new(&self.tree, frame).to_physical(namespace).ok_or_else(|| {
                AccessError::NamespaceNotInView {
                    namespace: namespace.to_owned(),
                    view: self.tree.nodes[frame].path.clone(),
                }
            }),
            None if self.tree.owner(namespace).is_some() => Ok(namespace.to_owned()),
            None => Err(AccessError::NamespaceOwnedByNoNode(namespace.to_owned())),
        }
    }

    /// Every namespace of the frame view, or of the whole tree.
    fn all_namespaces(&self) -> Vec<String> {
        let tops = (0..self.tree.nodes.len())
            .filter(|&n| self.tree.nodes[n].parent.is_none() && self.tree.nodes[n].reach.is_none());
        let mut all: Vec<String> = match self.frame {
            Some(frame) => self.tree.subtree_namespaces(frame),
            None => tops.flat_map(|top| self.tree.subtree_namespaces(top)).collect(),
        };
        all.sort_unstable();
        all
    }
}

/// Answers `who-can`.
pub async fn who_can(config: &Config, args: &WhoCanArgs) -> Result<String, AccessError> {
    let context = Context::load(config, args.view.as_deref()).await?;
    let target = resources::resolve(&context.resources, &args.resource)?;
    target.check_verb(&args.verb)?;
    let namespaces: Vec<Option<String>> = match (&args.namespace, target.resource.namespaced) {
        (Some(_), false) => return Err(AccessError::ClusterScoped(target.name())),
        (Some(namespace), true) => vec![Some(context.physical(namespace)?)],
        (None, true) => context.all_namespaces().into_iter().map(Some).collect(),
        (None, false) => vec![None],
    };
    let planned: Vec<_> = namespaces
        .iter()
        .flat_map(|physical| who_can::plan(&context.tree, context.frame, physical.as_deref(), &args.verb, &target))
        .collect();
    let pending: Vec<_> = planned.iter().map(|(_, p)| p.clone()).collect();
    let answers = context.reviewer.review_all(&questions(&pending)).await?;
    let report = Report::new(
        &args.verb,
        target.name(),
        args.view.clone(),
        args.namespace.clone(),
        who_can::rows(planned, &answers),
    );
    Ok(match args.format {
        Format::Table => report.render(),
        Format::Json => json(&report),
    })
}

/// Answers `access-matrix`.
pub async fn access_matrix(config: &Config, args: &MatrixArgs) -> Result<String, AccessError> {
    let identity = identity(&args.user, &args.groups);
    upstream::check_identity(&identity)?;
    let context = Context::load(config, args.view.as_deref()).await?;
    let namespace = args.namespace.as_deref().map(|n| context.physical(n)).transpose()?;
    let view = resolve_view(&context.tree, &identity, &ViewPath(args.view.clone())).map_err(|status| status.message);
    let place = Place { view, namespace };
    let rows = matrix::rows(&context.resources, place.namespace.is_some());
    let cells = matrix::plan(&context.tree, &identity, &place, &rows);
    let pending: Vec<_> = cells.iter().map(|(_, _, p)| p.clone()).collect();
    let answers = context.reviewer.review_all(&questions(&pending)).await?;
    let mut matrix = Matrix::new(&context.tree, &identity, &place, args.namespace.clone(), &rows, &cells, &answers);
    matrix.explain = args.explain;
    Ok(match args.format {
        Format::Table => matrix.render(),
        Format::Json => json(&matrix),
    })
}

fn json(value: &impl serde::Serialize) -> String {
    // Plain data always serializes; the fallback only keeps this function total.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}
