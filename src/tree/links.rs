//! Linked objects ("hard links") as the tree knows them: each node's links, checked once at load
//! — a source in a namespace the tree does not own or in one of the node's own or its
//! ancestors', a Secret type the node's ceiling allows, copy names no other link of the same
//! subtree uses — and which copies belong in a namespace ([`Tree::links_into`]): the one answer
//! the reconciler (which writes the copies) and the policy layer (which keeps tenants off them)
//! share. Also the label and annotation that mark a copy and name its source.

use sha2::{Digest, Sha256};

use super::{Ceiling, NodeId, Tree, TreeError, is_dns_label, is_dns_subdomain};
use crate::config::raw_tree::RawLink;

pub use crate::config::raw_tree::RawLinkKind as LinkKind;

/// Longest label value.
const LABEL_MAX: usize = 63;

/// One link of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub kind: LinkKind,
    /// Physical namespace of the source.
    pub namespace: String,
    /// Name of the source.
    pub name: String,
    /// Name of the copies.
    pub copy_name: String,
    /// The type a linked Secret has (and its copies get).
    pub secret_type: Option<String>,
    /// Config path of the link (`tree.nodes[0].links[1]`), for errors and logs.
    pub at: String,
}

impl LinkKind {
    /// The resource, as in API paths.
    pub fn resource(self) -> &'static str {
        match self {
            LinkKind::ConfigMap => "configmaps",
            LinkKind::Secret => "secrets",
        }
    }

    /// The kind, as in objects.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::ConfigMap => "ConfigMap",
            LinkKind::Secret => "Secret",
        }
    }

    /// The kind whose resource is `resource` (core group), if it can be linked.
    pub fn of_resource(resource: &str) -> Option<Self> {
        match resource {
            "configmaps" => Some(LinkKind::ConfigMap),
            "secrets" => Some(LinkKind::Secret),
            _ => None,
        }
    }
}

/// Compiles the links written at node `path` (config path `at`), whose effective ceiling is
/// `ceiling`.
pub(super) fn compile(raw: &[RawLink], ceiling: &Ceiling, path: &str, at: &str) -> Result<Vec<Link>, TreeError> {
    let mut links = Vec::new();
    for (i, link) in raw.iter().enumerate() {
        let at = format!("{at}.links[{i}]");
        let err = |field: &str, message: String| TreeError { at: format!("{at}.{field}"), message };
        if !is_dns_label(&link.namespace) {
            return Err(err("namespace", format!("{:?} is not a namespace name", link.namespace)));
        }
        if !is_dns_subdomain(&link.name) {
            return Err(err("name", format!("{:?} is not an object name (a DNS subdomain)", link.name)));
        }
        let copy_name = link.copy_name.clone().unwrap_or_else(|| link.name.clone());
        if !is_dns_subdomain(&copy_name) {
            return Err(err("as", format!("{copy_name:?} is not an object name (a DNS subdomain)")));
        }
        match (link.kind, &link.secret_type) {
            (LinkKind::ConfigMap, Some(_)) => {
                return Err(err("secretType", "only a Secret link has a secret type".into()));
            }
            (LinkKind::Secret, None) => {
                return Err(err("secretType", "a Secret link names the secret's type".into()));
            }
            (LinkKind::Secret, Some(kind)) if kind.trim().is_empty() => {
                return Err(err("secretType", "must not be empty".into()));
            }
            (LinkKind::Secret, Some(kind)) if !ceiling.allows_secret_type(kind) => {
                return Err(err("secretType", format!("node {path} does not allow secret type {kind}")));
            }
            _ => {}
        }
        links.push(Link {
            kind: link.kind,
            namespace: link.namespace.clone(),
            name: link.name.clone(),
            copy_name,
            secret_type: link.secret_type.clone(),
            at,
        });
    }
    Ok(links)
}

impl Tree {
    /// Refuses a link whose source lies in another subtree (its tenants could write into this
    /// one) and two links that would put copies of one kind and name into the same namespace.
    pub(super) fn check_links(&self) -> Result<(), TreeError> {
        for (id, node) in self.nodes.iter().enumerate() {
            for (i, link) in node.links.iter().enumerate() {
                if let Some(area) = self.namespace_area(&link.namespace)
                    && !self.is_within(id, area)
                {
                    return Err(TreeError {
                        at: format!("{}.namespace", link.at),
                        message: format!(
                            "namespace {:?} belongs to node {}, which is neither {} nor one of its ancestors",
                            link.namespace, self.nodes[area].path, node.path
                        ),
                    });
                }
                let earlier = self.ancestors(id).flat_map(|n| self.nodes[n].links.iter()).chain(&node.links[..i]);
                for other in earlier {
                    if other.kind == link.kind && other.copy_name == link.copy_name {
                        return Err(TreeError {
                            at: link.at.clone(),
                            message: format!(
                                "the copy name {:?} of this {} is already linked by {}",
                                link.copy_name,
                                link.kind.name(),
                                other.at
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The strict ancestors of `node`, nearest first.
    fn ancestors(&self, node: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::successors(self.nodes[node].parent, move |&n| self.nodes[n].parent)
    }

    /// The node whose namespaces `physical` is, or could be, among: the node declaring it, the
    /// node that created it (live index), or the deepest node whose prefix it carries, since
    /// tenants create namespaces only under their view's prefix. `None`: the platform's own.
    pub fn namespace_area(&self, physical: &str) -> Option<NodeId> {
        self.owner(physical).or_else(|| {
            (0..self.nodes.len())
                .filter(|&n| {
                    let prefix = &self.nodes[n].prefix;
                    !prefix.is_empty() && physical.len() > prefix.len() && physical.starts_with(prefix.as_str())
                })
                .max_by_key(|&n| self.nodes[n].prefix.len())
        })
    }

    /// Whether any node declares links.
    pub fn has_links(&self) -> bool {
        self.nodes.iter().any(|n| !n.links.is_empty())
    }

    /// The links whose copies belong in `physical`, a namespace owned by `owner`, with the node
    /// declaring each: those of `owner` and its ancestors, but not into the source's own
    /// namespace, and Secrets only where `owner`'s ceiling allows their type.
    pub fn links_into(&self, physical: &str, owner: NodeId) -> Vec<(NodeId, &Link)> {
        let ceiling = &self.nodes[owner].ceiling;
        std::iter::once(owner)
            .chain(self.ancestors(owner))
            .flat_map(|n| self.nodes[n].links.iter().map(move |link| (n, link)))
            .filter(|(_, link)| link.namespace != physical)
            .filter(|(_, link)| link.secret_type.as_deref().is_none_or(|t| ceiling.allows_secret_type(t)))
            .collect()
    }
}

/// `link.<domain>/source`: the label that marks a copy, and the annotation that names its
/// source exactly.
pub fn source_key(domain: &str) -> String {
    format!("link.{domain}/source")
}

/// The annotation naming a source: `<namespace>/<name>`, or `<name>` where the namespace is not
/// shown.
pub fn source_annotation(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

/// The namespace (if shown) and name of a source annotation.
pub fn parse_source_annotation(text: &str) -> (Option<&str>, &str) {
    match text.split_once('/') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, text),
    }
}

/// The label naming a source: `<namespace>.<name>`, or `<name>` where the namespace is not
/// shown; longer than a label value may be, it is cut and ends in a hash of the whole.
pub fn source_label(namespace: Option<&str>, name: &str) -> String {
    let full = match namespace {
        Some(namespace) => format!("{namespace}.{name}"),
        None => name.to_owned(),
    };
    if full.len() <= LABEL_MAX {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    // Names are ASCII (DNS subdomains), so byte offsets are character offsets.
    format!("{}-{hash}", &full[..LABEL_MAX - hash.len() - 1])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::raw_tree::RawTree;

    fn compile(yaml: &str) -> Result<Tree, TreeError> {
        let raw: RawTree = serde_saphyr::from_str(yaml).unwrap();
        Tree::compile(&raw, "tree")
    }

    /// A tree linking at two levels, with a child whose ceiling refuses the registry secret.
    pub(crate) const TREE: &str = r#"
domain: t.dev
nodes:
  - name: acme
    namespaces: [shared]
    allow:
      secretTypes: [Opaque, kubernetes.io/dockerconfigjson]
    links:
      - {kind: ConfigMap, namespace: platform, name: ca-bundle}
      - {kind: Secret, namespace: platform, name: registry, secretType: kubernetes.io/dockerconfigjson, as: pull}
    children:
      - name: web
        namespaces: [dev, prod]
        links:
          - {kind: ConfigMap, namespace: acme-shared, name: settings}
      - name: data
        namespaces: [warehouse]
        allow:
          secretTypes: [Opaque]
  - name: globex
    namespaces: [main]
"#;

    #[test]
    fn links_go_into_every_namespace_below_their_node() {
        let tree = compile(TREE).unwrap();
        let web = tree.node("acme/web").unwrap();
        let into = |ns: &str, owner: NodeId| -> Vec<String> {
            tree.links_into(ns, owner).iter().map(|(_, l)| format!("{}/{}", l.kind.name(), l.copy_name)).collect()
        };
        assert_eq!(into("acme-web-dev", web), ["ConfigMap/settings", "ConfigMap/ca-bundle", "Secret/pull"]);
        // A registry secret is not of a type acme/data may hold: no copy there.
        assert_eq!(into("acme-data-warehouse", tree.node("acme/data").unwrap()), ["ConfigMap/ca-bundle"]);
        // Nothing is copied onto its own source.
        let acme = tree.node("acme").unwrap();
        assert_eq!(into("acme-shared", acme), ["ConfigMap/ca-bundle", "Secret/pull"]);
        assert!(into("globex-main", tree.node("globex").unwrap()).is_empty());
        assert_eq!(tree.links_into("acme-web-dev", web)[0].0, web);
        assert!(tree.has_links() && !compile("nodes: [{name: a}]").unwrap().has_links());
    }

    #[test]
    fn sources_must_be_the_platforms_or_an_ancestors() {
        let err = compile(&TREE.replace("namespace: acme-shared", "namespace: globex-main")).unwrap_err();
        assert_eq!(err.at, "tree.nodes[0].children[0].links[0].namespace");
        assert!(err.message.contains("belongs to node globex"), "{err}");
        // Undeclared, but under a sibling's prefix: a namespace its tenants could create.
        let err = compile(&TREE.replace("namespace: acme-shared", "namespace: acme-data-x")).unwrap_err();
        assert!(err.message.contains("belongs to node acme/data"), "{err}");
        // Under an ancestor's prefix, or nobody's: fine.
        assert!(compile(&TREE.replace("namespace: acme-shared", "namespace: acme-tools")).is_ok());
        assert!(compile(&TREE.replace("namespace: acme-shared", "namespace: kube-public")).is_ok());
    }

    #[test]
    fn every_link_error_names_its_path() {
        let cases = [
            ("name: registry, secretType: kubernetes.io/dockerconfigjson", "name: registry", ".links[1].secretType"),
            ("name: ca-bundle}", "name: ca-bundle, secretType: Opaque}", ".links[0].secretType"),
            (
                "secretType: kubernetes.io/dockerconfigjson",
                "secretType: kubernetes.io/ssh-auth",
                ".links[1].secretType",
            ),
            ("namespace: platform, name: ca-bundle", "namespace: Platform, name: ca-bundle", ".links[0].namespace"),
            ("name: ca-bundle}", "name: ca_bundle}", ".links[0].name"),
            ("as: pull", "as: Pull", ".links[1].as"),
        ];
        for (from, to, at) in cases {
            let err = compile(&TREE.replace(from, to)).unwrap_err();
            assert_eq!(err.at, format!("tree.nodes[0]{at}"), "{to}: {err}");
        }
        let err =
            compile(&TREE.replace("secretType: kubernetes.io/dockerconfigjson", "secretType: kubernetes.io/ssh-auth"));
        assert_eq!(err.unwrap_err().message, "node acme does not allow secret type kubernetes.io/ssh-auth");
        let err = compile(&TREE.replace("name: settings", "name: ca-bundle")).unwrap_err();
        assert_eq!(err.at, "tree.nodes[0].children[0].links[0]");
        assert!(err.message.contains("already linked by tree.nodes[0].links[0]"), "{err}");
        // One name, two kinds: two different objects.
        assert!(compile(&TREE.replace("as: pull", "as: ca-bundle")).is_ok());
        let raw: Result<RawTree, _> =
            serde_saphyr::from_str("nodes: [{name: a, links: [{kind: Pod, namespace: p, name: x}]}]");
        assert!(raw.is_err());
    }

    #[test]
    fn sources_are_named_within_a_label_value() {
        assert_eq!(source_label(Some("platform"), "ca-bundle"), "platform.ca-bundle");
        assert_eq!(source_label(None, "ca-bundle"), "ca-bundle");
        let long = source_label(Some("platform"), &"x".repeat(80));
        assert_eq!(long.len(), LABEL_MAX);
        assert_ne!(long, source_label(Some("platform"), &"x".repeat(81)));
        assert_eq!(source_annotation(Some("platform"), "a.b"), "platform/a.b");
        assert_eq!(parse_source_annotation("platform/a.b"), (Some("platform"), "a.b"));
        assert_eq!(parse_source_annotation("a.b"), (None, "a.b"));
        assert_eq!(source_key("canopy.dev"), "link.canopy.dev/source");
    }
}
