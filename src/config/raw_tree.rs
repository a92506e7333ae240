//! The tenancy tree as written in the configuration file (see `tree::Tree` for its meaning).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// `tree:` — the platform's tenants.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Tree")]
pub struct RawTree {
    /// Domain of Canopy's labels on namespaces (`<node>.tree.<domain>/depth`).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Custom roles, by name, usable by members besides `admin`, `edit` and `view`.
    #[serde(default)]
    pub roles: BTreeMap<String, RawRole>,
    /// Top-level nodes.
    #[serde(default)]
    pub nodes: Vec<RawNode>,
    /// Cluster-wide principals that are not tenants (an ingress controller, a backup operator),
    /// each confined to a ceiling of its own over the namespaces it reaches, named physically.
    #[serde(default)]
    pub controllers: Vec<RawController>,
}

impl Default for RawTree {
    fn default() -> Self {
        Self { domain: default_domain(), roles: BTreeMap::new(), nodes: Vec::new(), controllers: Vec::new() }
    }
}

fn default_domain() -> String {
    "canopy.dev".into()
}

/// A custom role: the rules of a ClusterRole Canopy maintains upstream.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Role")]
pub struct RawRole {
    /// What the role grants, in RBAC's shape.
    pub rules: Vec<RawRule>,
}

/// A node of the tree.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Node")]
pub struct RawNode {
    /// DNS label, unique among siblings.
    pub name: String,
    /// Physical prefix of this node's namespaces; top-level nodes only (default `<name>-`).
    pub prefix: Option<String>,
    /// Local names of the namespaces this node owns.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Existing physical namespaces adopted under a local name: `local: physical`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Who may use this node's subtree, and as what.
    #[serde(default)]
    pub members: Vec<RawMember>,
    /// Labels Canopy sets on every namespace of this subtree, declared or tenant-created (such
    /// as `pod-security.kubernetes.io/enforce`). Inherited; a child may add keys but not change
    /// an ancestor's value. Tenants can neither set nor remove them.
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    /// The ceiling of this subtree; absent: the parent's.
    pub allow: Option<RawAllow>,
    /// Field masks of this subtree, added to the ancestors' masks.
    #[serde(default)]
    pub masks: Vec<RawMask>,
    /// Objects Canopy copies, read-only, into every namespace of this subtree and keeps in sync
    /// with their source.
    #[serde(default)]
    pub links: Vec<RawLink>,
    /// Requests refused at this node and everywhere below it, whatever RBAC and the ceiling
    /// allow: deny beats allow, and no node below can lift an ancestor's rule.
    #[serde(default)]
    pub deny: Vec<RawDeny>,
    /// Value bounds on what writes at this node and below may store, added to the ancestors':
    /// no node below can lift one.
    #[serde(default)]
    pub bounds: Vec<RawBound>,
    /// Nodes below this one; their paths are `<this path>/<name>`.
    #[serde(default)]
    pub children: Vec<RawNode>,
}

/// A field mask: database-view columns of one resource hidden from (`read`) or closed to
/// (`write`) the subtree's tenants. Paths are JSONPath (`$.spec.nodeName`,
/// `$.spec.containers[*].env[?@.name == 'TOKEN']`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Mask")]
pub struct RawMask {
    /// `pods`, `deployments.apps`, `nodes`: plural resource name, then its API group.
    pub resource: String,
    /// Roles the mask applies to; absent: every role.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Fields stripped from every answer (objects, lists, watch events, Table cells, managed
    /// fields, last-applied annotations); updates lacking them keep the stored values; tenants
    /// cannot set or change them.
    #[serde(default)]
    pub read: Vec<String>,
    /// Fields tenants may see but not set or change (refused with 403 naming the field).
    #[serde(default)]
    pub write: Vec<String>,
}

/// A subject bound at a node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Member")]
pub struct RawMember {
    /// What kind of subject `name` is.
    pub kind: RawSubjectKind,
    /// User, group or ServiceAccount name.
    pub name: String,
    /// For ServiceAccounts: the namespace's local name at this node.
    pub namespace: Option<String>,
    /// `admin`, `edit`, `view`, or a custom role.
    pub role: String,
}

/// A deny rule: what RBAC, being additive, cannot say (keep one Deployment safe from those who
/// may update Deployments). A request it matches is refused with a 403 naming the rule's config
/// path, and `kubectl auth can-i`, `canopy who-can` and `canopy access-matrix` report it so.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "DenyRule")]
pub struct RawDeny {
    /// Whom it refuses; absent: everyone at or below the node.
    #[serde(default)]
    pub subjects: Vec<RawDenySubject>,
    /// API groups (`""` is the core group, `"*"` any); absent: the core group.
    #[serde(default = "core_group")]
    pub api_groups: Vec<String>,
    /// Plural resources (`deployments` covers its subresources too; `deployments/scale` only
    /// that one) or `"*"`.
    pub resources: Vec<String>,
    /// Verbs (`get`, `update`, `patch`, `delete`, …) or `"*"`; `delete` refuses
    /// `deletecollection` and `get` refuses `list` and `watch` too, which reach the same objects.
    pub verbs: Vec<String>,
    /// Object names, or prefixes ending in `*`; absent: every object. Requests that name no
    /// object (lists, watches, creates, deletecollections) are refused too when the rule lists
    /// their verb: they could read or touch the named ones.
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// Namespaces by their names at this node (`dev`, `web-dev` for a child's); absent: every
    /// namespace of the subtree, and cluster-scoped resources.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Objects by their labels; absent: every object. An object is refused when its labels
    /// match, before or after the write (so a write cannot lift or dodge the rule by relabelling),
    /// and a delete or an eviction is committed only on the object judged (`log`, `exec`,
    /// `attach`, `portforward` and `proxy`, which the API gives no precondition, are judged on
    /// the object read just before). Lists, watches and deletecollections are refused unless
    /// their own `labelSelector` selects none of the rule's objects (`-l 'protected!=true'`).
    pub label_selector: Option<RawLabelSelector>,
    /// Why, said in the refusal.
    pub reason: Option<String>,
}

/// A label selector, as in Kubernetes objects: all of `matchLabels` and `matchExpressions` hold.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "LabelSelector")]
pub struct RawLabelSelector {
    /// Labels with exactly these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements on one label each.
    #[serde(default)]
    pub match_expressions: Vec<RawSelectorRequirement>,
}

/// One requirement of a label selector.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "LabelSelectorRequirement")]
pub struct RawSelectorRequirement {
    /// The label's key.
    pub key: String,
    /// How the label relates to `values`.
    pub operator: RawSelectorOperator,
    /// For `In` and `NotIn`: at least one; for `Exists` and `DoesNotExist`: none.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A label selector requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum RawSelectorOperator {
    /// The label is present with one of the values.
    In,
    /// The label is absent or has none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A value bound: what a field of the objects a write would store may hold (replicas of one
/// Deployment between 2 and 10, images from one registry, no Service `externalIPs`). Judged on
/// the object the apiserver would store, so every kind of write counts (create, update, every
/// patch type, server-side apply); a write breaking it is refused with `422 Invalid` naming the
/// field and the bound's config path. Exactly one constraint: `min`/`max`, `enum`, `regex`,
/// `absent` or `immutable`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Bound")]
pub struct RawBound {
    /// `services`, `deployments.apps`: plural resource name, then its API group, as masks name
    /// them. A bound on `pods` holds on every pod template too (Deployments, StatefulSets,
    /// DaemonSets, ReplicaSets, Jobs, CronJobs, ReplicationControllers, PodTemplates).
    pub resource: String,
    /// Object names, or prefixes ending in `*`; absent: every object.
    #[serde(default)]
    pub names: Vec<String>,
    /// JSONPath of the bounded values (`$.spec.replicas`, `$.spec.containers[*].image`); each
    /// value it selects must meet the constraint.
    pub path: String,
    /// Each selected value is a number at least this.
    pub min: Option<f64>,
    /// Each selected value is a number at most this.
    pub max: Option<f64>,
    /// Each selected value is one of these.
    #[serde(rename = "enum")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Each selected value is a string this regular expression matches whole.
    pub regex: Option<String>,
    /// The path selects nothing (a `null` counts as absent).
    #[serde(default)]
    pub absent: bool,
    /// Once the object exists, what the path selects never changes.
    #[serde(default)]
    pub immutable: bool,
    /// Why, said in the refusal.
    pub reason: Option<String>,
}

/// A subject a deny rule refuses.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "DenySubject")]
pub struct RawDenySubject {
    /// What kind of subject `name` is.
    pub kind: RawSubjectKind,
    /// User, group or ServiceAccount name.
    pub name: String,
    /// For ServiceAccounts: the namespace's name at this node.
    pub namespace: Option<String>,
}

/// A controller: a principal that is not a tenant, such as the ServiceAccount of an ingress
/// controller. It sees the namespaces it reaches under their physical names, with no renaming,
/// and only what its `allow` lets through: an ingress controller allowed the secret type
/// `kubernetes.io/tls` alone lists, watches and gets TLS secrets as if no other type existed.
/// Its subjects use this view whatever URL they call; none of them may also be a member of a
/// node (a principal is a tenant or a controller, never both). The platform grants them RBAC
/// upstream itself: Canopy narrows what that RBAC allows, it binds them nothing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Controller")]
pub struct RawController {
    /// DNS label, unique among controllers; its view is called `controller:<name>` in audit
    /// lines and messages.
    pub name: String,
    /// Who acts as this controller.
    pub subjects: Vec<RawControllerSubject>,
    /// The namespaces it reaches, by their physical names: `all` (every namespace of the
    /// cluster) or `{subtree: <node path>}` (the namespaces of that subtree).
    pub namespaces: RawReach,
    /// Its ceiling, as a node's `allow`: resources × verbs, cluster resources, subresources,
    /// secret types (absent: every type). Namespace creation is never a controller's.
    pub allow: RawAllow,
    /// Field masks on what it reads and writes.
    #[serde(default)]
    pub masks: Vec<RawMask>,
}

/// A controller's subject.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "ControllerSubject")]
pub struct RawControllerSubject {
    /// What kind of subject `name` is.
    pub kind: RawSubjectKind,
    /// User, group or ServiceAccount name.
    pub name: String,
    /// For ServiceAccounts: the physical namespace it lives in.
    pub namespace: Option<String>,
}

/// The namespaces a controller reaches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "ControllerNamespaces")]
pub enum RawReach {
    /// Every namespace of the cluster, the platform's own included.
    All,
    /// The namespaces of the subtree at this node path (`acme`, `acme/web`).
    Subtree(String),
}

/// The kind of a member, as in RBAC subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[schemars(rename = "SubjectKind")]
pub enum RawSubjectKind {
    User,
    Group,
    ServiceAccount,
}

/// A linked object ("hard link"): a ConfigMap or Secret that Canopy's reconciler copies into
/// every namespace of the node's subtree — declared or created by tenants — and updates within
/// seconds of the source changing. Tenants may read the copies but not change, delete or shadow
/// them. Copies carry the label and annotation `link.<domain>/source` naming their source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Link")]
pub struct RawLink {
    /// What the source is.
    pub kind: RawLinkKind,
    /// Physical namespace of the source: one the tree does not own (a platform namespace such as
    /// `platform`), or one owned by this node or an ancestor. A namespace of another subtree is
    /// refused: its tenants could write into this one.
    pub namespace: String,
    /// Name of the source object.
    pub name: String,
    /// Name of the copies; absent: the source's name.
    #[serde(rename = "as")]
    pub copy_name: Option<String>,
    /// Secrets only, and required for them: the source's type, which this node's ceiling must
    /// allow. Namespaces whose owner's ceiling does not allow it get no copy; a source whose
    /// type differs is not copied.
    pub secret_type: Option<String>,
}

/// The kinds of objects a node may link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[schemars(rename = "LinkKind")]
pub enum RawLinkKind {
    ConfigMap,
    Secret,
}

/// What a subtree may ever do.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Allow")]
pub struct RawAllow {
    /// Namespaced resources × verbs.
    #[serde(default)]
    pub resources: Vec<RawRule>,
    /// Cluster-scoped resources the subtree may read.
    #[serde(default)]
    pub cluster_resources: Vec<RawClusterRule>,
    /// Subresources granted by name: `exec`, `attach`, `portforward`, `log`, `proxy`,
    /// `ephemeralcontainers`, `eviction`, `binding`, `token`, `resize`. `status` and `scale` go with
    /// the verbs on their resource; any other subresource is refused.
    #[serde(default)]
    pub subresources: Vec<String>,
    /// Namespace creation inside the subtree.
    #[serde(default)]
    pub namespaces: RawNamespaceAllow,
    /// Secret types the subtree may see, create and reference from pods (`Opaque`,
    /// `kubernetes.io/tls`, …). Absent: the parent's; absent all the way up: every type.
    pub secret_types: Option<Vec<String>>,
    /// ClusterRoles a RoleBinding in the subtree may name as its `roleRef` (`view`, `edit`, …).
    /// Absent: the parent's; absent all the way up: `admin`, `edit`, `view` and the ClusterRoles
    /// of the tree's custom roles (`canopy:role:<name>`).
    pub bindable_cluster_roles: Option<Vec<String>>,
    /// StorageClasses the subtree's PersistentVolumeClaims may use. Absent: the parent's; absent
    /// all the way up: any class that exists.
    pub storage_classes: Option<Vec<String>>,
    /// IngressClasses the subtree's Ingresses may use. Absent: the parent's; absent all the way
    /// up: any class that exists.
    pub ingress_classes: Option<Vec<String>>,
}

/// A rule in RBAC's shape.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Rule")]
pub struct RawRule {
    /// API groups (`""` is the core group, `"*"` any); absent: the core group.
    #[serde(default = "core_group")]
    pub api_groups: Vec<String>,
    /// Resource names (plural, lower case) or `"*"`.
    pub resources: Vec<String>,
    /// Verbs (`get`, `list`, `watch`, `create`, …) or `"*"`.
    pub verbs: Vec<String>,
}

/// A readable cluster-scoped resource.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "ClusterRule")]
pub struct RawClusterRule {
    /// API groups (`""` is the core group); absent: the core group.
    #[serde(default = "core_group")]
    pub api_groups: Vec<String>,
    /// Cluster-scoped resource names (plural, lower case).
    pub resources: Vec<String>,
}

fn core_group() -> Vec<String> {
    vec![String::new()]
}

/// Whether and how many namespaces tenants of the subtree may create themselves.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "NamespaceAllow")]
pub struct RawNamespaceAllow {
    /// Whether tenants may create (and delete) namespaces in the subtree.
    #[serde(default)]
    pub create: bool,
    /// Most namespaces the subtree may hold in all.
    #[serde(default)]
    pub quota: u32,
    /// Label keys tenants who manage namespaces may set, change and remove on the view's
    /// namespaces, at creation and later alike: exact keys or prefixes ending in `*`. Default
    /// none: cluster components read namespace labels (Pod Security admission's
    /// `pod-security.kubernetes.io/*`, mesh injection), so only what the platform lists is
    /// accepted; a write touching any other key is refused, as is one touching Canopy's tree
    /// labels or the platform's `namespaceLabels` whatever this lists.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Annotation keys tenants may set on namespaces, as for `labels` (default none:
    /// e.g. `scheduler.alpha.kubernetes.io/node-selector` pins every pod of a namespace).
    #[serde(default)]
    pub annotations: Vec<String>,
}
