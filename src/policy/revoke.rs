//! Revocation of open streams (design invariant 9). A watch or an exec, attach or port-forward
//! tunnel is decided once, against the tree in force when it began, but may stay open for hours.
//! Each one therefore keeps its [`Standing`] — what the decision rested on — and a task compares
//! it with every newer tree: when a reload refuses the request now, the stream ends with a 403
//! `ERROR` event (tunnels are closed); when it would be answered differently (another role,
//! ceiling, mask or set of namespaces), it ends with `410 Expired`, so informers list again and
//! see the new view. A reload that does not touch the caller's standing leaves the stream alone.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{decide, resolve_view};
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::mask::MaskRule;
use crate::request::{RequestInfo, ViewPath};
use crate::status::Status;
use crate::tree::{Ceiling, NodeId, Tree};
use crate::upstream::StreamEnd;

/// What a request's decision rested on, compared with a newer tree by paths, not node ids.
#[derive(Debug)]
pub struct Standing {
    /// The tree it was decided in, shared (a stream keeps no copy of a node's ceiling).
    tree: Arc<Tree>,
    view: String,
    role: Option<String>,
    namespace: Option<(String, String)>,
    /// Physical namespaces a request across namespaces reaches.
    across: Vec<String>,
    /// The nodes of `tree` answering for the namespaces reached.
    nodes: Vec<NodeId>,
}

impl Standing {
    /// The standing of the request in `tree`; `None` when `tree` refuses it.
    pub fn of(tree: &Arc<Tree>, identity: &Identity, info: &RequestInfo, view_path: &ViewPath) -> Option<Standing> {
        let view = resolve_view(tree, identity, view_path).ok()?;
        let plan = decide(tree, view, identity, info).ok()?;
        let across = if plan.across { tree.view_namespaces(view) } else { Vec::new() };
        let answering: Vec<NodeId> = match &plan.namespace {
            Some((physical, _)) => vec![tree.answering(view, Some(physical))],
            None if plan.across => tree.subtree(view).collect(),
            None => vec![view],
        };
        Some(Standing {
            tree: Arc::clone(tree),
            nodes: answering,
            view: tree.nodes[view].path.clone(),
            role: tree.member_at(identity, view).map(|m| m.role.clone()),
            namespace: plan.namespace,
            across,
        })
    }

    /// Whether a request standing as `self` would be answered the same way standing as `now`:
    /// the same view, role, namespace, ceilings and masks, and across namespaces every one it
    /// reaches still there (one added later is simply not part of this stream).
    fn holds_in(&self, now: &Standing) -> bool {
        self.view == now.view
            && self.role == now.role
            && self.namespace == now.namespace
            && self.answering().eq(now.answering())
            && self.across.iter().all(|n| now.across.binary_search(n).is_ok())
    }

    /// Path, ceiling and mask rules of every node answering for the namespaces reached.
    fn answering(&self) -> impl Iterator<Item = (&str, &Ceiling, &[Arc<MaskRule>])> {
        self.nodes.iter().map(|&n| {
            let node = &self.tree.nodes[n];
            (node.path.as_str(), &node.ceiling, node.masks.as_slice())
        })
    }
}

/// How an open stream ends when the tree changes under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The new tree refuses the request.
    Revoked,
    /// The new tree would answer it differently.
    Changed,
}

/// Cancelled when a newer tree no longer decides the request as before. Request extension for
/// the tunnel of an upgraded request; the task watching the trees ends once every clone is gone.
#[derive(Clone)]
pub struct Revocation {
    token: CancellationToken,
    ending: watch::Receiver<Option<Ending>>,
    _watching: Arc<DropGuard>,
}

impl Revocation {
    /// Watches `trees` for a tree that decides the request differently from `standing`.
    pub fn watch(
        mut trees: watch::Receiver<Arc<Tree>>,
        identity: Identity,
        info: RequestInfo,
        view_path: ViewPath,
        mut standing: Standing,
    ) -> Revocation {
        let token = CancellationToken::new();
        let finished = CancellationToken::new();
        let (ending_tx, ending) = watch::channel(None);
        let (revoke, done) = (token.clone(), finished.clone());
        tokio::spawn(async move {
            trees.mark_unchanged();
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    changed = trees.changed() => if changed.is_err() { return },
                }
                let tree = trees.borrow_and_update().clone();
                let ending = match Standing::of(&tree, &identity, &info, &view_path) {
                    // Standing on the newer tree from now on lets the older one go.
                    Some(now) if standing.holds_in(&now) => {
                        standing = now;
                        continue;
                    }
                    Some(_) => Ending::Changed,
                    None => Ending::Revoked,
                };
                tracing::info!(user = %identity.user, ?ending, "closing an open stream after a reload");
                ending_tx.send_replace(Some(ending));
                revoke.cancel();
                return;
            }
        });
        Revocation { token, ending, _watching: Arc::new(finished.drop_guard()) }
    }

    /// What ends an upgraded stream's tunnel when this is revoked.
    pub fn stream_end(&self) -> StreamEnd {
        StreamEnd::new(self.token.clone(), self._watching.clone())
    }

    /// Resolves when the stream must end.
    pub async fn revoked(&self) {
        self.token.cancelled().await
    }

    /// The watch event that ends a watch, once revoked.
    fn final_event(&self) -> Bytes {
        let status = match *self.ending.borrow() {
            Some(Ending::Changed) => {
                Status::gone("the view changed since this watch began (configuration reload); list again")
            }
            _ => Status::forbidden("access revoked by a configuration reload"),
        };
        let mut line = br#"{"type":"ERROR","object":"#.to_vec();
        line.extend_from_slice(&status.to_json());
        line.extend_from_slice(b"}\n");
        Bytes::from(line)
    }

    /// `response` (a successful watch) ending with an `ERROR` event when revoked.
    pub fn end_watch(self, response: Response<Body>) -> Response<Body> {
        if !response.status().is_success() || response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return response;
        }
        response.map(|body| {
            let frames = stream::unfold(Some((body, self)), |state| async move {
                let (mut body, revocation) = state?;
                tokio::select! {
                    biased;
                    _ = revocation.revoked() => {
                        let event = revocation.final_event();
                        Some((Ok(http_body::Frame::data(event)), None))
                    }
                    frame = body.frame() => Some((frame?, Some((body, revocation)))),
                }
            });
            body::boxed(StreamBody::new(frames))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_tree::RawTree;

    fn tree(edit: impl Fn(String) -> String) -> Arc<Tree> {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy-config/example.yaml")).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&edit(text)).unwrap();
        let raw: RawTree = serde_json::from_value(doc["tree"].clone()).unwrap();
        Arc::new(Tree::compile(&raw, "tree").unwrap())
    }

    fn watch(namespace: &str) -> RequestInfo {
        RequestInfo {
            is_resource_request: true,
            verb: "watch".into(),
            api_version: "v1".into(),
            namespace: namespace.into(),
            resource: "configmaps".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_stream_stands_until_a_reload_touches_what_it_rests_on() {
        let bob = Identity::new("bob", ["system:authenticated"]);
        let (dev, all) = (watch("dev"), watch(""));
        let home = ViewPath::default();
        let before = tree(|t| t);
        let standing = |tree: &Arc<Tree>, info: &RequestInfo| Standing::of(tree, &bob, info, &home);
        let (in_dev, across) = (standing(&before, &dev).unwrap(), standing(&before, &all).unwrap());

        let unrelated = tree(|t| t.replace("name: dave", "name: david"));
        assert!(in_dev.holds_in(&standing(&unrelated, &dev).unwrap()), "another tenant's member changed");
        assert!(across.holds_in(&standing(&unrelated, &all).unwrap()));

        let without_bob =
            tree(|t| t.replace("{kind: User, name: bob, role: edit}", "{kind: User, name: rob, role: edit}"));
        assert!(standing(&without_bob, &dev).is_none(), "revoked");

        let masked = tree(|t| {
            t.replace(
                "        - resource: pods\n",
                "        - resource: configmaps\n          read: [$.data]\n        - resource: pods\n",
            )
        });
        assert!(!in_dev.holds_in(&standing(&masked, &dev).unwrap()), "a new mask changes the answer");

        let fewer = tree(|t| t.replace("namespaces: [dev, prod]", "namespaces: [dev]"));
        assert!(in_dev.holds_in(&standing(&fewer, &dev).unwrap()), "dev itself is unchanged");
        assert!(!across.holds_in(&standing(&fewer, &all).unwrap()), "prod left the view");
        let more = tree(|t| t.replace("namespaces: [dev, prod]", "namespaces: [dev, prod, qa]"));
        assert!(across.holds_in(&standing(&more, &all).unwrap()), "a namespace added later is not part of it");
    }
}
