//! The secrets (and ConfigMaps) a Pod or pod template names: volumes (every in-tree volume
//! source's secret field, listed; an unknown source is refused), projected volume sources,
//! `env[].valueFrom.secretKeyRef`, `envFrom[].secretRef` of every container kind, and
//! `imagePullSecrets`; and those a ServiceAccount hands its pods (`imagePullSecrets`,
//! `secrets`). Pure functions over JSON objects, each reference with the field path that names
//! it, for error messages.

use serde_json::Value;

/// Objects that carry a pod spec, and where: `(group, resource)` and the path to the spec in
/// an object of `kind`.
const POD_BEARING: [(&str, &str, &str, &[&str]); 9] = [
    ("", "pods", "Pod", &["spec"]),
    ("", "podtemplates", "PodTemplate", &["template", "spec"]),
    ("", "replicationcontrollers", "ReplicationController", &["spec", "template", "spec"]),
    ("apps", "deployments", "Deployment", &["spec", "template", "spec"]),
    ("apps", "statefulsets", "StatefulSet", &["spec", "template", "spec"]),
    ("apps", "daemonsets", "DaemonSet", &["spec", "template", "spec"]),
    ("apps", "replicasets", "ReplicaSet", &["spec", "template", "spec"]),
    ("batch", "jobs", "Job", &["spec", "template", "spec"]),
    ("batch", "cronjobs", "CronJob", &["spec", "jobTemplate", "spec", "template", "spec"]),
];

/// Whether objects of `group/resource` carry a pod spec.
pub fn is_pod_bearing(group: &str, resource: &str) -> bool {
    POD_BEARING.iter().any(|(g, r, _, _)| *g == group && *r == resource)
}

/// Whether objects of `group/resource` name secrets for pods: pod-bearing ones and
/// ServiceAccounts.
pub fn names_secrets(group: &str, resource: &str) -> bool {
    is_pod_bearing(group, resource) || (group.is_empty() && resource == "serviceaccounts")
}

/// A secret named by a pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The secret's name (in the object's own namespace).
    pub name: String,
    /// Where the object names it, e.g. `spec.template.spec.volumes[0].secret.secretName`.
    pub field: String,
}

/// A volume source (or projection) Canopy does not know, so cannot tell what it names: the
/// field path where it appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown(pub String);

/// Where an in-tree volume source names a secret.
#[derive(Debug, Clone, Copy)]
enum Secret {
    /// `<key>` holds the secret's name.
    Named(&'static str),
    /// `<key>.name` holds it.
    Ref(&'static str),
    /// Projected sources, each checked.
    Projected,
}

/// Every volume source of core/v1 `VolumeSource` and where it names a secret; a source not in
/// this list is refused, since what it names cannot be checked.
const VOLUME_SOURCES: [(&str, Option<Secret>); 31] = [
    ("name", None),
    ("hostPath", None),
    ("emptyDir", None),
    ("gcePersistentDisk", None),
    ("awsElasticBlockStore", None),
    ("gitRepo", None),
    ("secret", Some(Secret::Named("secretName"))),
    ("nfs", None),
    ("iscsi", Some(Secret::Ref("secretRef"))),
    ("glusterfs", None),
    ("persistentVolumeClaim", None),
    ("rbd", Some(Secret::Ref("secretRef"))),
    ("flexVolume", Some(Secret::Ref("secretRef"))),
    ("cinder", Some(Secret::Ref("secretRef"))),
    ("cephfs", Some(Secret::Ref("secretRef"))),
    ("flocker", None),
    ("downwardAPI", None),
    ("fc", None),
    ("azureFile", Some(Secret::Named("secretName"))),
    ("configMap", None),
    ("vsphereVolume", None),
    ("quobyte", None),
    ("azureDisk", None),
    ("photonPersistentDisk", None),
    ("projected", Some(Secret::Projected)),
    ("portworxVolume", None),
    ("scaleIO", Some(Secret::Ref("secretRef"))),
    ("storageos", Some(Secret::Ref("secretRef"))),
    ("csi", Some(Secret::Ref("nodePublishSecretRef"))),
    ("ephemeral", None),
    ("image", None),
];

/// Every projection of core/v1 `VolumeProjection`; only `secret` names a secret.
const PROJECTIONS: [&str; 6] =
    ["secret", "configMap", "downwardAPI", "serviceAccountToken", "clusterTrustBundle", "podCertificate"];

/// Every secret `object` (a Pod, a pod-bearing object or a ServiceAccount, by its `kind`)
/// names, in field order; an unknown volume source is an error.
pub fn secret_refs(object: &Value) -> Result<Vec<SecretRef>, Unknown> {
    if object.get("kind").and_then(Value::as_str) == Some("ServiceAccount") {
        return Ok(service_account_refs(object));
    }
    let Some((spec, path)) = pod_spec(object) else { return Ok(Vec::new()) };
    let mut refs = Refs { out: Vec::new() };
    refs.pod_spec(spec, &path)?;
    Ok(refs.out)
}

/// Every ConfigMap `object` names (volumes, projected sources, `env`, `envFrom`), in field order.
pub fn configmap_refs(object: &Value) -> Vec<SecretRef> {
    let Some((spec, path)) = pod_spec(object) else { return Vec::new() };
    let mut refs = Refs { out: Vec::new() };
    refs.configmaps(spec, &path);
    refs.out
}

/// The pod spec of `object` (a Pod or a pod-bearing object, by its `kind`) and its field path,
/// e.g. `spec.template.spec`.
pub fn pod_spec(object: &Value) -> Option<(&Value, String)> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let (_, _, _, path) = POD_BEARING.iter().find(|(_, _, k, _)| *k == kind)?;
    let spec = path.iter().try_fold(object, |v, key| v.get(key))?;
    Some((spec, path.join(".")))
}

/// Every secret a ServiceAccount names: the pods running as it get its `imagePullSecrets` from
/// the apiserver's admission, and `secrets` lists what they may mount.
fn service_account_refs(account: &Value) -> Vec<SecretRef> {
    let mut refs = Refs { out: Vec::new() };
    for list in ["secrets", "imagePullSecrets"] {
        for (i, secret) in items(account, list) {
            refs.add(secret.get("name"), format!("{list}[{i}].name"));
        }
    }
    refs.out
}

struct Refs {
    out: Vec<SecretRef>,
}

impl Refs {
    fn add(&mut self, name: Option<&Value>, field: String) {
        if let Some(name) = name.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            self.out.push(SecretRef { name: name.to_owned(), field });
        }
    }

    fn pod_spec(&mut self, spec: &Value, at: &str) -> Result<(), Unknown> {
        for (i, volume) in items(spec, "volumes") {
            let at = format!("{at}.volumes[{i}]");
            let Some(sources) = volume.as_object() else { continue };
            for (plugin, source) in sources {
                let Some((_, field)) = VOLUME_SOURCES.iter().find(|(known, _)| known == plugin) else {
                    return Err(Unknown(format!("{at}.{plugin}")));
                };
                match *field {
                    None => {}
                    Some(Secret::Named(key)) => self.add(source.get(key), format!("{at}.{plugin}.{key}")),
                    Some(Secret::Ref(key)) => {
                        self.add(source.get(key).and_then(|s| s.get("name")), format!("{at}.{plugin}.{key}.name"));
                    }
                    Some(Secret::Projected) => {
                        for (j, projection) in items(source, "sources") {
                            let at = format!("{at}.projected.sources[{j}]");
                            for kind in projection.as_object().into_iter().flat_map(|p| p.keys()) {
                                if !PROJECTIONS.contains(&kind.as_str()) {
                                    return Err(Unknown(format!("{at}.{kind}")));
                                }
                            }
                            self.add(projection.pointer("/secret/name"), format!("{at}.secret.name"));
                        }
                    }
                }
            }
        }
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for (c, container) in items(spec, list) {
                let at = format!("{at}.{list}[{c}]");
                for (e, env) in items(container, "env") {
                    let name = env.pointer("/valueFrom/secretKeyRef/name");
                    self.add(name, format!("{at}.env[{e}].valueFrom.secretKeyRef.name"));
                }
                for (e, from) in items(container, "envFrom") {
                    self.add(from.pointer("/secretRef/name"), format!("{at}.envFrom[{e}].secretRef.name"));
                }
            }
        }
        for (i, pull) in items(spec, "imagePullSecrets") {
            self.add(pull.get("name"), format!("{at}.imagePullSecrets[{i}].name"));
        }
        Ok(())
    }

    fn configmaps(&mut self, spec: &Value, at: &str) {
        for (i, volume) in items(spec, "volumes") {
            let at = format!("{at}.volumes[{i}]");
            self.add(volume.pointer("/configMap/name"), format!("{at}.configMap.name"));
            for (j, projection) in items(volume.get("projected").unwrap_or(&Value::Null), "sources") {
                self.add(projection.pointer("/configMap/name"), format!("{at}.projected.sources[{j}].configMap.name"));
            }
        }
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for (c, container) in items(spec, list) {
                let at = format!("{at}.{list}[{c}]");
                for (e, env) in items(container, "env") {
                    let name = env.pointer("/valueFrom/configMapKeyRef/name");
                    self.add(name, format!("{at}.env[{e}].valueFrom.configMapKeyRef.name"));
                }
                for (e, from) in items(container, "envFrom") {
                    self.add(from.pointer("/configMapRef/name"), format!("{at}.envFrom[{e}].configMapRef.name"));
                }
            }
        }
    }
}

/// The elements of the array `value[key]`, with their indices.
fn items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    value.get(key).and_then(Value::as_array).into_iter().flatten().enumerate()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(object: &Value) -> Vec<(String, String)> {
        secret_refs(object).unwrap().into_iter().map(|r| (r.name, r.field)).collect()
    }

    #[test]
    fn every_in_tree_volume_source_secret_is_found() {
        let pod = json!({"kind": "Pod", "spec": {"volumes": [
            {"name": "a", "azureFile": {"secretName": "azure", "shareName": "s"}},
            {"name": "b", "cephfs": {"monitors": [], "secretRef": {"name": "ceph"}}},
            {"name": "c", "iscsi": {"secretRef": {"name": "chap"}}},
            {"name": "d", "persistentVolumeClaim": {"claimName": "x"}}]}});
        let found: Vec<String> = names(&pod).into_iter().map(|(n, _)| n).collect();
        assert_eq!(found, ["azure", "ceph", "chap"]);
        assert_eq!(names(&pod)[0].1, "spec.volumes[0].azureFile.secretName");
    }

    #[test]
    fn unknown_volume_sources_are_refused() {
        let pod = json!({"kind": "Pod", "spec": {"volumes": [{"name": "a", "futureVolume": {"secretName": "s"}}]}});
        assert_eq!(secret_refs(&pod), Err(Unknown("spec.volumes[0].futureVolume".into())));
        let projected = json!({"kind": "Deployment", "spec": {"template": {"spec": {"volumes": [
            {"name": "a", "projected": {"sources": [{"futureProjection": {"name": "s"}}]}}]}}}});
        assert_eq!(
            secret_refs(&projected),
            Err(Unknown("spec.template.spec.volumes[0].projected.sources[0].futureProjection".into()))
        );
    }

    #[test]
    fn service_accounts_name_the_secrets_of_their_pods() {
        let account =
            json!({"kind": "ServiceAccount", "secrets": [{"name": "token"}], "imagePullSecrets": [{"name": "pull"}]});
        assert_eq!(
            names(&account),
            [
                ("token".to_owned(), "secrets[0].name".to_owned()),
                ("pull".to_owned(), "imagePullSecrets[0].name".to_owned())
            ]
        );
        assert!(names_secrets("", "serviceaccounts") && !names_secrets("", "configmaps"));
    }

    #[test]
    fn every_reference_kind_of_a_pod_is_found_with_its_field() {
        // A Pod as the apiserver returns it from a dry-run create (trimmed).
        let pod = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "acme-web-dev"},
            "spec": {
                "volumes": [
                    {"name": "a", "secret": {"secretName": "vol", "defaultMode": 420}},
                    {"name": "kube-api-access-x", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {"secret": {"name": "proj"}},
                        {"configMap": {"name": "kube-root-ca.crt"}}]}},
                    {"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi"}}},
                    {"name": "e", "emptyDir": {}}],
                "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "from"}}]}],
                "containers": [{"name": "m", "env": [
                    {"name": "PLAIN", "value": "x"},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "key", "key": "k"}}}]}],
                "ephemeralContainers": [{"name": "dbg", "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "eph", "key": "k"}}}]}],
                "imagePullSecrets": [{"name": "pull"}]}});
        let found = names(&pod);
        let expected = [
            ("vol", "spec.volumes[0].secret.secretName"),
            ("proj", "spec.volumes[1].projected.sources[1].secret.name"),
            ("csi", "spec.volumes[2].csi.nodePublishSecretRef.name"),
            ("from", "spec.initContainers[0].envFrom[1].secretRef.name"),
            ("key", "spec.containers[0].env[1].valueFrom.secretKeyRef.name"),
            ("eph", "spec.ephemeralContainers[0].env[0].valueFrom.secretKeyRef.name"),
            ("pull", "spec.imagePullSecrets[0].name"),
        ];
        assert_eq!(found, expected.map(|(n, f)| (n.to_owned(), f.to_owned())));
        let configmaps: Vec<_> = configmap_refs(&pod).into_iter().map(|r| (r.name, r.field)).collect();
        assert_eq!(
            configmaps,
            [
                ("kube-root-ca.crt".to_owned(), "spec.volumes[1].projected.sources[2].configMap.name".to_owned()),
                ("cm".to_owned(), "spec.initContainers[0].envFrom[0].configMapRef.name".to_owned()),
            ]
        );
    }

    #[test]
    fn templates_are_found_where_each_kind_keeps_them() {
        let spec = json!({"containers": [{"name": "m", "envFrom": [{"secretRef": {"name": "s"}}]}]});
        let deployment = json!({"kind": "Deployment", "spec": {"template": {"spec": spec.clone()}}});
        assert_eq!(
            names(&deployment),
            [("s".to_owned(), "spec.template.spec.containers[0].envFrom[0].secretRef.name".to_owned())]
        );
        let cron = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec.clone()}}}}});
        assert_eq!(names(&cron)[0].1, "spec.jobTemplate.spec.template.spec.containers[0].envFrom[0].secretRef.name");
        let template = json!({"kind": "PodTemplate", "template": {"spec": spec}});
        assert_eq!(names(&template)[0].0, "s");
        assert!(names(&json!({"kind": "ConfigMap", "data": {"spec": "x"}})).is_empty());
        assert!(is_pod_bearing("batch", "cronjobs") && !is_pod_bearing("", "secrets"));
    }
}
