//! `canopy access-matrix --user U`: resources × verbs, each cell decided as Canopy decides the
//! request at that moment — the user's view (as `resolve_view` picks it for the kubeconfig's
//! URL), the tree's confinement and ceiling, then the apiserver asked as the user. With `-n`, the
//! namespaced resources in that namespace; without, the cluster-scoped ones. Each row also
//! names the value bounds that narrow the writes it allows (`--explain` prints them).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::resources::ApiResource;
use super::{Ask, By, Pending, Verdict, table, verdicts};
use crate::auth::Identity;
use crate::rewrite::ViewNames;
use crate::tree::{NodeId, Tree};

/// The verbs of the matrix, as `kubectl access-matrix` shows them.
pub const VERBS: [&str; 7] = ["get", "list", "watch", "create", "update", "patch", "delete"];

/// One cell to decide: the row (index into the resources), the verb, and the question.
pub type Cell = (usize, &'static str, Pending);

/// Where the matrix is asked.
#[derive(Debug, Clone)]
pub struct Place {
    /// The user's view, or why the user has none (every cell is then refused with it).
    pub view: Result<NodeId, String>,
    /// Physical namespace (`-n`); `None` for the cluster-scoped matrix.
    pub namespace: Option<String>,
}

/// The resources the matrix has rows for: namespaced ones with a namespace, else the others.
pub fn rows(resources: &[ApiResource], namespaced: bool) -> Vec<&ApiResource> {
    resources.iter().filter(|r| r.namespaced == namespaced).collect()
}

/// Every cell of `rows` that the resource serves, decided as far as the tree decides it.
pub fn plan(tree: &Tree, identity: &Identity, place: &Place, rows: &[&ApiResource]) -> Vec<Cell> {
    // The view and the namespace's name there, or why every cell is refused.
    let standing = place.view.clone().and_then(|view| match &place.namespace {
        None => Ok((view, String::new())),
        Some(physical) => ViewNames::new(tree, view)
            .to_virtual(physical)
            .map(|name| (view, name))
            .ok_or_else(|| format!("namespace {physical:?} is outside view {}", tree.nodes[view].path)),
    });
    let mut cells = Vec::new();
    for (index, resource) in rows.iter().enumerate() {
        for verb in VERBS.iter().copied().filter(|verb| resource.verbs.iter().any(|v| v == verb)) {
            let pending = match &standing {
                Err(reason) => Pending::refused(reason.clone()),
                Ok((view, namespace)) => {
                    let ask = Ask {
                        verb: verb.to_owned(),
                        group: resource.group.clone(),
                        resource: resource.resource.clone(),
                        namespace: namespace.clone(),
                        ..Ask::default()
                    };
                    Pending::new(tree, *view, identity, ask)
                }
            };
            cells.push((index, verb, pending));
        }
    }
    cells
}

/// One resource's row: the verdict of each verb it serves.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub resource: String,
    pub access: BTreeMap<&'static str, Verdict>,
    /// The value bounds on what the allowed writes may store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<BoundNote>,
}

/// A value bound narrowing a row's allowed writes.
#[derive(Debug, Clone, Serialize)]
pub struct BoundNote {
    /// The bound's config path.
    pub at: String,
    /// The allowed write verbs it narrows.
    pub verbs: Vec<&'static str>,
    /// `spec.replicas: between 2 and 10 (only queueworker)`.
    pub bound: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The verbs that store objects, which bounds narrow.
const WRITES: [&str; 3] = ["create", "update", "patch"];

/// The bounds on `resource` in force where the matrix is asked, for the verbs of `access` that
/// write and are allowed.
fn bound_notes(
    tree: &Tree,
    place: &Place,
    resource: &ApiResource,
    access: &BTreeMap<&'static str, Verdict>,
) -> Vec<BoundNote> {
    let Ok(view) = place.view else { return Vec::new() };
    let node = place.namespace.as_deref().and_then(|physical| tree.owner(physical)).unwrap_or(view);
    let verbs: Vec<&'static str> =
        WRITES.into_iter().filter(|verb| access.get(verb).is_some_and(|v| v.allowed)).collect();
    if verbs.is_empty() {
        return Vec::new();
    }
    tree.nodes[node].bounds.on(&resource.group, &resource.resource).map_or_else(Vec::new, |on| {
        on.all()
            .iter()
            .map(|bound| BoundNote {
                at: bound.at.clone(),
                verbs: verbs.clone(),
                bound: bound.describe(),
                reason: bound.reason.clone(),
            })
            .collect()
    })
}

/// A decided matrix.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    pub user: String,
    pub groups: Vec<String>,
    /// The view the user's requests are decided in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// Why every cell is refused, when the user has no view here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// As given with `-n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub verbs: [&'static str; 7],
    pub resources: Vec<Row>,
    /// Whether [`Matrix::render`] lists the value bounds under the table.
    #[serde(skip)]
    pub explain: bool,
}

impl Matrix {
    /// The matrix of `rows`, given upstream's answers to the questions of `cells` in order.
    pub fn new(
        tree: &Tree,
        identity: &Identity,
        place: &Place,
        namespace: Option<String>,
        rows: &[&ApiResource],
        cells: &[Cell],
        answers: &[Value],
    ) -> Self {
        let pending: Vec<Pending> = cells.iter().map(|(_, _, p)| p.clone()).collect();
        let mut resources: Vec<Row> =
            rows.iter().map(|r| Row { resource: r.name(), access: BTreeMap::new(), bounds: Vec::new() }).collect();
        for ((index, verb, _), verdict) in cells.iter().zip(verdicts(&pending, answers)) {
            resources[*index].access.insert(verb, verdict);
        }
        for (row, resource) in resources.iter_mut().zip(rows) {
            row.bounds = bound_notes(tree, place, resource, &row.access);
        }
        Matrix {
            user: identity.user.clone(),
            groups: identity.groups.clone(),
            view: place.view.as_ref().ok().map(|&v| tree.nodes[v].path.clone()),
            refused: place.view.as_ref().err().cloned(),
            namespace,
            verbs: VERBS,
            resources,
            explain: false,
        }
    }

    /// The table, under a line saying whose access it is and where.
    pub fn render(&self) -> String {
        let mut out = format!("access of {} (groups {})", self.user, self.groups.join(", "));
        match &self.namespace {
            Some(namespace) => out.push_str(&format!(" in namespace {namespace}")),
            None => out.push_str(" to cluster-scoped resources"),
        }
        if let Some(view) = &self.view {
            out.push_str(&format!(" (view {view})"));
        }
        out.push_str(" through Canopy:\n");
        if let Some(reason) = &self.refused {
            out.push_str(&format!("every request is refused: {reason}\n"));
        }
        let mut header = vec!["NAME"];
        let upper: Vec<String> = VERBS.iter().map(|v| v.to_uppercase()).collect();
        header.extend(upper.iter().map(String::as_str));
        let rows: Vec<Vec<String>> = self
            .resources
            .iter()
            .map(|row| {
                let marks = VERBS.iter().map(|verb| match row.access.get(verb) {
                    Some(verdict) if verdict.allowed && verdict.except.is_some() => "✔*".to_owned(),
                    Some(verdict) if verdict.allowed => "✔".to_owned(),
                    Some(_) => "✖".to_owned(),
                    None => "n/a".to_owned(),
                });
                std::iter::once(row.resource.clone()).chain(marks).collect()
            })
            .collect();
        out.push_str(&table::render(&header, &rows));
        let by = |who: By| self.resources.iter().flat_map(|r| r.access.values()).any(|v| !v.allowed && v.by == who);
        let mut legend = String::from("✔ allowed  ✖ refused");
        match (by(By::Canopy), by(By::Upstream)) {
            (true, true) => legend.push_str(" (by the tree or by upstream RBAC"),
            (true, false) => legend.push_str(" (by the tree"),
            (false, true) => legend.push_str(" (by upstream RBAC"),
            (false, false) => legend.push_str(" ("),
        }
        legend.push_str("; -o json says why)  n/a: the resource has no such verb\n");
        let excepted = self.resources.iter().flat_map(|r| r.access.values()).any(|v| v.allowed && v.except.is_some());
        if excepted {
            legend.push_str("✔* allowed but for the objects deny rules choose by label (--explain lists them)\n");
        }
        out.push_str(&legend);
        if self.explain {
            out.push_str(&self.render_exceptions());
            out.push_str(&self.render_bounds());
        }
        out
    }

    /// The objects deny rules keep from allowed requests, one line per resource and exception.
    fn render_exceptions(&self) -> String {
        let mut rows: Vec<Vec<String>> = Vec::new();
        for row in &self.resources {
            let mut by_exception: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for verb in VERBS {
                if let Some(except) = row.access.get(verb).filter(|v| v.allowed).and_then(|v| v.except.as_deref()) {
                    by_exception.entry(except).or_default().push(verb);
                }
            }
            rows.extend(
                by_exception
                    .into_iter()
                    .map(|(except, verbs)| vec![row.resource.clone(), verbs.join(","), except.to_owned()]),
            );
        }
        if rows.is_empty() {
            return "no deny rule chooses objects by label among the allowed requests\n".to_owned();
        }
        let mut out = String::from("\nallowed requests that deny rules refuse for objects they choose by label:\n");
        out.push_str(&table::render(&["NAME", "VERBS", "REFUSED FOR"], &rows));
        out
    }

    /// The value bounds narrowing the allowed writes, one per line under their resource.
    fn render_bounds(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .resources
            .iter()
            .flat_map(|row| {
                row.bounds.iter().map(|note| {
                    let by = match &note.reason {
                        Some(reason) => format!("{}: {reason}", note.at),
                        None => note.at.clone(),
                    };
                    vec![row.resource.clone(), note.verbs.join(","), note.bound.clone(), by]
                })
            })
            .collect();
        if rows.is_empty() {
            return "no value bounds narrow the allowed writes\n".to_owned();
        }
        let mut out = String::from("\nvalue bounds on what the allowed writes may store:\n");
        out.push_str(&table::render(&["NAME", "NARROWS", "BOUND", "BY"], &rows));
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::access::resources::tests::sample;
    use crate::access::{Gate, identity};
    use crate::policy::resolve_view;
    use crate::policy::tests::example;
    use crate::request::ViewPath;

    fn place(tree: &Tree, identity: &Identity, view: Option<&str>, namespace: Option<&str>) -> Place {
        let view = resolve_view(tree, identity, &ViewPath(view.map(str::to_owned))).map_err(|s| s.message);
        Place { view, namespace: namespace.map(str::to_owned) }
    }

    #[test]
    fn a_reader_is_refused_writes_by_the_tree_and_asks_upstream_for_reads() {
        let tree = example();
        let carol = identity("carol", &[]);
        let place = place(&tree, &carol, Some("acme/data"), Some("acme-data-warehouse"));
        let resources = sample();
        let rows = rows(&resources, true);
        let cells = plan(&tree, &carol, &place, &rows);
        let asked: Vec<String> = cells
            .iter()
            .filter_map(|(i, verb, p)| {
                p.question.as_ref().map(|q| format!("{verb} {} {}", rows[*i].name(), q.ask.namespace))
            })
            .collect();
        assert!(asked.contains(&"watch deployments.apps acme-data-warehouse".to_owned()), "{asked:?}");
        assert!(asked.iter().all(|q| ["get ", "list ", "watch "].iter().any(|v| q.starts_with(v))), "{asked:?}");
        // events.k8s.io is outside acme/data's ceiling: refused by the tree, upstream not asked.
        assert!(!asked.iter().any(|q| q.contains("events.events.k8s.io")), "{asked:?}");
        let answers: Vec<Value> = asked.iter().map(|_| json!({"status": {"allowed": true}})).collect();
        let matrix = Matrix::new(&tree, &carol, &place, Some("warehouse".into()), &rows, &cells, &answers);
        let text = matrix.render();
        assert!(text.starts_with("access of carol (groups system:authenticated) in namespace warehouse (view acme/data) through Canopy:\n"), "{text}");
        assert!(text.contains("\nconfigmaps            ✔    ✔     ✔      ✖       ✖       ✖      ✖\n"), "{text}");
        assert!(text.contains("\nevents                ✔    ✔     n/a    ✖       n/a     n/a    n/a\n"), "{text}");
        assert!(text.contains("\nevents.events.k8s.io  ✖    ✖     n/a    ✖"), "{text}");
        assert!(
            text.ends_with(
                "✔ allowed  ✖ refused (by the tree; -o json says why)  n/a: the resource has no such verb\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&matrix).unwrap();
        assert_eq!(json["resources"][0]["access"]["create"]["by"], "canopy");
        assert_eq!(json["view"], "acme/data");
    }

    #[test]
    fn a_user_who_is_a_member_nowhere_is_refused_everything() {
        let tree = example();
        let erin = identity("erin", &[]);
        let place = place(&tree, &erin, None, Some("acme-web-dev"));
        let resources = sample();
        let rows = rows(&resources, true);
        let cells = plan(&tree, &erin, &place, &rows);
        assert!(cells.iter().all(|(_, _, p)| p.question.is_none()));
        let matrix = Matrix::new(&tree, &erin, &place, Some("acme-web-dev".into()), &rows, &cells, &[]);
        let text = matrix.render();
        assert!(text.contains("every request is refused: User \"erin\" is not a member of any tenant\n"), "{text}");
        let (table, legend) = text.rsplit_once("\n✔ allowed").unwrap();
        assert!(!table.contains('✔') && !legend.contains('✔'), "{text}");
        assert!(matrix.resources.iter().flat_map(|r| r.access.values()).all(|v| !v.allowed && v.by == By::Canopy));
    }

    #[test]
    fn explain_shows_the_bounds_next_to_the_writes_they_narrow() {
        let tree = example();
        let dave = identity("dave", &[]);
        let place_of = place;
        let place = place_of(&tree, &dave, None, Some("globex-main"));
        let resources = sample();
        let rows = rows(&resources, true);
        let cells = plan(&tree, &dave, &place, &rows);
        let answers: Vec<Value> = cells
            .iter()
            .filter(|(_, _, p)| p.question.is_some())
            .map(|_| json!({"status": {"allowed": true}}))
            .collect();
        let mut matrix = Matrix::new(&tree, &dave, &place, Some("main".into()), &rows, &cells, &answers);
        let deployments = matrix.resources.iter().find(|r| r.resource == "deployments.apps").unwrap();
        let notes: Vec<&str> = deployments.bounds.iter().map(|n| n.bound.as_str()).collect();
        assert!(notes.contains(&"spec.replicas: between 2 and 10 (only queueworker)"), "{notes:?}");
        assert!(notes.contains(&"spec.template.spec.hostNetwork: absent"), "{notes:?}");
        assert_eq!(deployments.bounds[0].verbs, ["create", "update", "patch"]);
        assert!(!matrix.render().contains("value bounds"));
        matrix.explain = true;
        let text = matrix.render();
        assert!(text.contains("value bounds on what the allowed writes may store:"), "{text}");
        let line = text.lines().find(|l| l.contains("between 2 and 10")).unwrap();
        assert!(line.starts_with("deployments.apps") && line.contains("create,update,patch"), "{text}");
        assert!(line.contains("tree.nodes[1].bounds[3]: the queue needs 2 workers"), "{text}");
        // A reader's matrix has no allowed writes to narrow.
        let carol = identity("carol", &[]);
        let reader = place_of(&tree, &carol, Some("acme/data"), Some("acme-data-warehouse"));
        let cells = plan(&tree, &carol, &reader, &rows);
        let matrix = Matrix::new(&tree, &carol, &reader, None, &rows, &cells, &[]);
        assert!(matrix.resources.iter().all(|r| r.bounds.is_empty()));
    }

    #[test]
    fn writes_a_label_rule_refuses_for_some_objects_are_marked_and_explained() {
        let tree = example();
        let bob = identity("bob", &[]);
        let place = place(&tree, &bob, None, Some("acme-web-dev"));
        let resources = sample();
        let rows = rows(&resources, true);
        let cells = plan(&tree, &bob, &place, &rows);
        let answers: Vec<Value> = cells
            .iter()
            .filter(|(_, _, p)| p.question.is_some())
            .map(|_| json!({"status": {"allowed": true}}))
            .collect();
        let mut matrix = Matrix::new(&tree, &bob, &place, Some("dev".into()), &rows, &cells, &answers);
        let configmaps = matrix.resources.iter().find(|r| r.resource == "configmaps").unwrap();
        let except = configmaps.access["patch"].except.as_deref().unwrap();
        assert_eq!(
            except,
            "except objects labelled platform.canopy.dev/protected=true (tree.nodes[0].deny[1]: the platform team protects it)"
        );
        assert_eq!(configmaps.access["get"].except, None);
        let text = matrix.render();
        assert!(text.contains("\nconfigmaps            ✔    ✔     ✔      ✔*      ✔*      ✔*     ✔*\n"), "{text}");
        assert!(text.contains("✔* allowed but for the objects deny rules choose by label"), "{text}");
        matrix.explain = true;
        let text = matrix.render();
        let line = text.lines().find(|l| l.starts_with("configmaps ") && l.contains("labelled")).unwrap();
        assert!(line.contains("create,update,patch,delete") && line.contains("tree.nodes[0].deny[1]"), "{text}");
        let json = serde_json::to_value(&matrix).unwrap();
        assert_eq!(json["resources"][0]["access"]["delete"]["except"], except);
    }

    #[test]
    fn a_namespace_outside_the_users_view_is_refused() {
        let tree = example();
        let dave = identity("dave", &[]);
        let place = place(&tree, &dave, None, Some("acme-web-dev"));
        let resources = sample();
        let rows = rows(&resources, true);
        let cells = plan(&tree, &dave, &place, &rows);
        let Gate::Refused(reason) = &cells[0].2.gate else { panic!("{:?}", cells[0]) };
        assert_eq!(reason, "namespace \"acme-web-dev\" is outside view globex");
    }

    #[test]
    fn without_a_namespace_the_cluster_scoped_resources_are_decided() {
        let tree = example();
        let bob = identity("bob", &[]);
        let place = place(&tree, &bob, None, None);
        let resources = sample();
        let rows = rows(&resources, false);
        assert_eq!(rows.iter().map(|r| r.name()).collect::<Vec<_>>(), ["namespaces"]);
        let cells = plan(&tree, &bob, &place, &rows);
        let matrix = Matrix::new(&tree, &bob, &place, None, &rows, &cells, &[]);
        let namespaces = &matrix.resources[0].access;
        assert!(namespaces["list"].allowed && namespaces["list"].by == By::Canopy, "{namespaces:?}");
        assert!(namespaces["create"].allowed, "editors create namespaces where the ceiling allows");
        assert!(!namespaces["update"].allowed);
    }
}
