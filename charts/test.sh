#!/usr/bin/env bash
# Checks the Helm chart charts/canopy: installs a pinned helm from the Go module proxy when it
# is missing (cached under target/helm/), runs `helm lint` (also --strict), renders the chart
# with its defaults, with every optional feature on and in a few variants, and checks the
# rendered objects: the Deployment's replicas, probes, hardening and resources, the PDB,
# Service, ServiceAccount, RBAC, the config ConfigMap (its keys against Canopy's config types in
# src/config/), the NetworkPolicy; with features on, the HPA, ServiceMonitor and TLS Secret
# volume; that a tree change leaves the pod template alone (hot reload, no restart). Then
# NOTES.txt, that values violating values.schema.json are refused, and, when a built Canopy is
# there (it never builds one), that Canopy accepts the rendered config and serves with the
# chart's CA. Prints how long each step took; exits non-zero on the first failure.
#
#   charts/test.sh
#   HELM=/path/to/helm          use this helm instead of the pinned one
#   CANOPY_BIN=/path/to/canopy  the binary for the last step (default target/release/canopy)
#   KEEP_WORK=1                 keep the rendered files (target/helm/work.*)
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
KUBE_MINOR=37 # helm v3.22.0 is built on k8s.io/client-go v0.37
CHART=${CANOPY_CHART:-charts/canopy} # another copy of the chart, for testing this script
RELEASE=canopy
NAMESPACE=canopy-system
TOOLS=$PWD/target/helm/$HELM_VERSION

started=$SECONDS
step_started=$SECONDS
step_name=""
declare -a timings=()
step() {
	if [ -n "$step_name" ]; then
		timings+=("$(printf '%-44s %4ss' "$step_name" $((SECONDS - step_started)))")
	fi
	step_name="$1"
	step_started=$SECONDS
	[ -n "$step_name" ] && echo "== $step_name"
	return 0
}
report() {
	local rc=$?
	step ""
	echo "== charts/test.sh timings"
	printf '%s\n' "${timings[@]}"
	printf '%-44s %4ss\n' "total" $((SECONDS - started))
	[ -n "${work:-}" ] && [ -z "${KEEP_WORK:-}" ] && rm -rf "$work"
	if [ "$rc" -eq 0 ]; then echo "charts/test.sh: ok"; else echo "charts/test.sh: FAILED" >&2; fi
}
trap report EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# Helm keeps caches and config out of $HOME.
export HELM_CACHE_HOME=$TOOLS/home/cache HELM_CONFIG_HOME=$TOOLS/home/config HELM_DATA_HOME=$TOOLS/home/data

step "helm $HELM_VERSION"
if [ -n "${HELM:-}" ]; then
	helm=$HELM
else
	helm=$TOOLS/helm
	if [ ! -x "$helm" ] || [ "$("$helm" version --template '{{.Version}}' 2>/dev/null)" != "$HELM_VERSION" ]; then
		command -v go >/dev/null || fail "Go is needed to install helm (go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION)"
		echo "installing helm $HELM_VERSION with go install into $TOOLS (first run only)"
		mkdir -p "$TOOLS"
		# The -X flags are what helm's own Makefile stamps in: without them `helm version` has no
		# patch number and helm assumes Kubernetes v1.20, older than the chart's kubeVersion.
		# KUBE_MINOR follows the k8s.io/client-go minor version that helm release depends on.
		ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
		for pkg in pkg/lint/rules pkg/chartutil; do
			ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$KUBE_MINOR"
		done
		GOBIN=$TOOLS GOFLAGS=-buildvcs=false go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
	fi
fi
"$helm" version --short

step "python3 with PyYAML"
command -v python3 >/dev/null || fail "python3 is needed to check the rendered chart"
if ! python3 -c 'import yaml' 2>/dev/null; then
	if ! PYTHONPATH=$TOOLS/pylib python3 -c 'import yaml' 2>/dev/null; then
		echo "installing PyYAML into $TOOLS/pylib"
		python3 -m pip install --quiet --disable-pip-version-check --target "$TOOLS/pylib" pyyaml
	fi
	export PYTHONPATH=$TOOLS/pylib${PYTHONPATH:+:$PYTHONPATH}
fi

mkdir -p target/helm
work=$(mktemp -d "$PWD/target/helm/work.XXXXXX")

step "helm lint"
"$helm" lint "$CHART" --namespace "$NAMESPACE"
"$helm" lint "$CHART" --namespace "$NAMESPACE" --strict
"$helm" lint "$CHART" --namespace "$NAMESPACE" --strict -f "$CHART/ci/features-on.yaml"

render() { # render OUT [helm template args...]
	local out=$1
	shift
	"$helm" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >"$out"
}

step "helm template (defaults, features on, variants)"
render "$work/defaults.yaml"
render "$work/features.yaml" -f "$CHART/ci/features-on.yaml"
# Same settings, another tree: the pods must not change (the tree is hot reloaded).
render "$work/other-tree.yaml" -f <(printf 'tree:\n  domain: example.org\n  nodes:\n    - name: solo\n      namespaces: [main]\n      members: [{kind: User, name: zed, role: view}]\n')
# A start-time setting changed: the pods must roll.
render "$work/other-settings.yaml" --set server.shutdownGraceSeconds=45 --set server.workerThreads=2
# No shared CA: each pod generates its own into an emptyDir.
render "$work/per-pod-ca.yaml" --set tls.generated.createCA=false --set replicaCount=1
# Bring-your-own CA Secret.
render "$work/ca-secret.yaml" --set tls.generated.caSecret=my-ca

step "check rendered objects"
python3 - "$work" "$CHART" <<'PY'
import json, os, re, sys
import yaml

work, chart = sys.argv[1], sys.argv[2]
NS, RELEASE = "canopy-system", "canopy"
failures = []

def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr, flush=True)
    return cond

def load(name):
    docs = [d for d in yaml.safe_load_all(open(os.path.join(work, name))) if d]
    objs = {}
    for d in docs:
        key = (d["kind"], d["metadata"]["name"])
        assert key not in objs, f"{name}: duplicate {key}"
        objs[key] = d
    return objs

def one(objs, kind, render):
    found = [o for (k, _), o in objs.items() if k == kind]
    check(len(found) == 1, f"{render}: expected one {kind}, found {len(found)}")
    return found[0] if found else {}

# Field names of Canopy's config structs, from the Rust source: the rendered config may use
# only these keys, and the schema's tree definitions must name exactly the tree's fields.
def rust_fields(path):
    text = open(path).read()
    structs = {}
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
        # A field's key is its serde rename, else its name in camelCase.
        fields = re.findall(r'^\s*(?:#\[serde\(rename = "(\w+)"\)\]\s*)?pub (\w+):', m.group(2), re.M)
        structs[m.group(1)] = {rename or re.sub(r"_(\w)", lambda g: g.group(1).upper(), f) for rename, f in fields}
    return structs

raw = rust_fields("src/config/raw.rs")
raw_tree = rust_fields("src/config/raw_tree.rs")
CONFIG_SHAPE = {
    (): "RawConfig", ("server",): "RawServer", ("server", "tls"): "RawTls",
    ("server", "limits"): "RawLimits",
    ("upstream",): "RawUpstream", ("authentication",): "RawAuthentication",
    ("authentication", "tokenReview"): "RawTokenReview",
}

def check_config_keys(config, render):
    for path, struct in CONFIG_SHAPE.items():
        node = config
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        if node is None:
            continue
        allowed = raw.get(struct)
        if not check(allowed, f"src/config/raw.rs: struct {struct} not found"):
            continue
        extra = set(node) - allowed
        check(not extra, f"{render}: config {'.'.join(path) or '(top)'} has keys {sorted(extra)} that {struct} does not know")

schema = json.load(open(os.path.join(chart, "values.schema.json")))
defs = schema["definitions"]
tree_props = schema["properties"]["tree"]["properties"]
for name, props, struct in [
    ("tree", tree_props, "RawTree"),
    ("roles.*", tree_props["roles"]["additionalProperties"]["properties"], "RawRole"),
    ("node", defs["node"]["properties"], "RawNode"),
    ("member", defs["member"]["properties"], "RawMember"),
    ("link", defs["link"]["properties"], "RawLink"),
    ("allow", defs["allow"]["properties"], "RawAllow"),
    ("allow.namespaces", defs["allow"]["properties"]["namespaces"]["properties"], "RawNamespaceAllow"),
    ("rule", defs["rule"]["properties"], "RawRule"),
    ("clusterRule", defs["clusterRule"]["properties"], "RawClusterRule"),
    ("mask", defs["mask"]["properties"], "RawMask"),
    ("controller", defs["controller"]["properties"], "RawController"),
    ("controllerSubject", defs["controllerSubject"]["properties"], "RawControllerSubject"),
]:
    check(set(props) == raw_tree.get(struct, set()),
          f"values.schema.json tree {name}: {sorted(set(props))} != {struct} fields {sorted(raw_tree.get(struct, set()))}")
for name, props, struct in [
    ("authentication.tokenReview", schema["properties"]["authentication"]["properties"]["tokenReview"]["properties"], "RawTokenReview"),
    ("server.limits", schema["properties"]["server"]["properties"]["limits"]["properties"], "RawLimits"),
]:
    check(set(props) == raw.get(struct, set()), f"values.schema.json {name} != {struct} fields")

values = yaml.safe_load(open(os.path.join(chart, "values.yaml")))
features_values = yaml.safe_load(open(os.path.join(chart, "ci/features-on.yaml")))

def container(dep):
    cs = dep["spec"]["template"]["spec"]["containers"]
    return next(c for c in cs if c["name"] == "canopy")

def volume(dep, name):
    return next((v for v in dep["spec"]["template"]["spec"].get("volumes", []) if v["name"] == name), None)

def mount(c, name):
    return next((m for m in c.get("volumeMounts", []) if m["name"] == name), None)

def port_of(hostport):
    return int(hostport.rsplit(":", 1)[1])

def common(objs, render, tree):
    """Checks that hold for every render; returns (deployment, config)."""
    for (kind, name), o in objs.items():
        ns = o["metadata"].get("namespace")
        if kind in ("ClusterRole", "ClusterRoleBinding"):
            check(ns is None, f"{render}: {kind} {name} has a namespace")
        elif (kind, name) in (("Role", "canopy-leader-election"), ("RoleBinding", "canopy-leader-election")):
            check(ns == "kube-system", f"{render}: lease {kind} must be in kube-system (the namespace Canopy uses), not {ns}")
        else:
            check(ns == NS, f"{render}: {kind} {name} not in the release namespace ({ns})")
        labels = o["metadata"].get("labels", {})
        check(labels.get("app.kubernetes.io/instance") == RELEASE, f"{render}: {kind} {name} lacks the instance label")

    dep = one(objs, "Deployment", render)
    pod = dep["spec"]["template"]["spec"]
    selector = dep["spec"]["selector"]["matchLabels"]
    check(selector == {"app.kubernetes.io/name": "canopy", "app.kubernetes.io/instance": RELEASE}, f"{render}: selector {selector}")
    check(all(dep["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items()), f"{render}: pod labels miss the selector")
    c = container(dep)
    check(c["command"] == ["/canopy", "serve"], f"{render}: command {c.get('command')}")
    check(c["args"][:1] == ["--config"], f"{render}: args {c.get('args')}")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(set(ports) == {"https", "admin"}, f"{render}: container ports {ports}")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        hg = c.get(probe, {}).get("httpGet", {})
        check(hg.get("path") == path and hg.get("port") == "admin", f"{render}: {probe} is not GET {path} on the admin port: {hg}")
    # Hardening.
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True, f"{render}: runAsNonRoot")
    check(isinstance(csc.get("runAsUser"), int) and csc["runAsUser"] > 0, f"{render}: runAsUser must be a non-zero uid")
    check(csc.get("readOnlyRootFilesystem") is True, f"{render}: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{render}: allowPrivilegeEscalation")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{render}: capabilities.drop ALL")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
          and csc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{render}: seccomp RuntimeDefault")
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        check(all(res.get(kind, {}).get(r) for r in ("cpu", "memory")), f"{render}: resources.{kind} cpu and memory")
    anti = pod.get("affinity", {}).get("podAntiAffinity", {}).get("preferredDuringSchedulingIgnoredDuringExecution", [])
    check(any(t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
              and t["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector for t in anti),
          f"{render}: preferred pod anti-affinity by hostname")
    check(pod.get("serviceAccountName") == "canopy", f"{render}: serviceAccountName {pod.get('serviceAccountName')}")
    check(not any(e["name"] == "KUBECONFIG" for e in c.get("env", [])), f"{render}: KUBECONFIG must not be set")
    # Every mount has a volume; every writable path is a volume (the root fs is read-only).
    vols = {v["name"] for v in pod.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        check(m["name"] in vols, f"{render}: mount {m['name']} has no volume")
        check("subPath" not in m, f"{render}: mount {m['name']} uses subPath (ConfigMap/Secret updates would not reach it)")

    # The config file: a directory mount of the ConfigMap, so the kubelet updates it in place.
    cm_name = volume(dep, "config")["configMap"]["name"]
    cm = objs.get(("ConfigMap", cm_name))
    check(cm is not None, f"{render}: ConfigMap {cm_name} not rendered")
    config_path = c["args"][1]
    m = mount(c, "config")
    check(m and os.path.dirname(config_path) == m["mountPath"], f"{render}: --config {config_path} is not in the config mount")
    config = yaml.safe_load(cm["data"][os.path.basename(config_path)])
    check(set(config) == {"server", "upstream", "authentication", "tree"}, f"{render}: config sections {sorted(config)}")
    check_config_keys(config, render)
    check(config["tree"] == tree, f"{render}: the config's tree is not .Values.tree verbatim")
    srv = config["server"]
    check(port_of(srv["listen"]) == ports["https"], f"{render}: server.listen {srv['listen']} != https port {ports['https']}")
    check(port_of(srv["adminListen"]) == ports["admin"], f"{render}: server.adminListen != admin port")
    check(srv["listen"].startswith("0.0.0.0:"), f"{render}: server.listen must bind all addresses in a pod")
    check(srv["publicUrl"].startswith("https://"), f"{render}: publicUrl must be https")
    check(pod["terminationGracePeriodSeconds"] > srv["shutdownGraceSeconds"], f"{render}: grace period shorter than Canopy's drain")
    # Each path in the config lies in a mounted volume.
    mounts = [mm["mountPath"] for mm in c.get("volumeMounts", [])]
    paths = [srv["tls"].get("certFile"), srv["tls"].get("keyFile"), srv["tls"].get("generatedDir"), srv.get("clientCaFile"),
             config["upstream"].get("kubeconfig"), config["authentication"].get("tokenFile")]
    for p in filter(None, paths):
        check(any(p == mp or p.startswith(mp + "/") for mp in mounts), f"{render}: config path {p} is not in a mounted volume")
    check(("checksum/config" not in dep["spec"]["template"]["metadata"].get("annotations", {})),
          f"{render}: a checksum of the whole ConfigMap would restart pods on every tree change")

    # Service, ServiceAccount, PDB, NetworkPolicy, RBAC.
    svc = one(objs, "Service", render)
    check(svc["spec"]["selector"] == selector, f"{render}: Service selector")
    sports = {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]}
    check(sports == {"https": "https", "admin": "admin"}, f"{render}: Service ports {sports}")
    check(("ServiceAccount", "canopy") in objs, f"{render}: ServiceAccount canopy")
    pdb = one(objs, "PodDisruptionBudget", render)
    check(pdb.get("spec", {}).get("minAvailable") == 1 and pdb["spec"]["selector"]["matchLabels"] == selector, f"{render}: PDB minAvailable 1")
    np = one(objs, "NetworkPolicy", render)
    check(np.get("spec", {}).get("podSelector", {}).get("matchLabels") == selector, f"{render}: NetworkPolicy podSelector")
    rules = {tuple(p["port"] for p in r["ports"]): r for r in np.get("spec", {}).get("ingress", [])}
    check(set(rules) == {("https",), ("admin",)}, f"{render}: NetworkPolicy ingress rules by port {sorted(rules)}")

    cr = one(objs, "ClusterRole", render)
    granted = set()
    for r in cr.get("rules", []):
        # The one wildcard allowed: impersonating every uid and user extra (RBAC cannot name
        # "userextras/<any key>" otherwise).
        extras = r == {"apiGroups": ["authentication.k8s.io"], "resources": ["*"], "verbs": ["impersonate"]}
        check(extras or ("*" not in r.get("verbs", []) and "*" not in r.get("resources", []) and "*" not in r.get("apiGroups", [])),
              f"{render}: ClusterRole rule with a wildcard: {r}")
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for v in r["verbs"]:
                    granted.add((g, res, v, tuple(r.get("resourceNames", []))))
    def has(g, res, v, names=()):
        return any(x[:3] == (g, res, v) and set(names) <= set(x[3]) and (names or not x[3]) for x in granted)
    # uids and userextras/<key> (keys may hold '/'): only "*" covers every key, RBAC has no "userextras/*".
    for g, res in [("", "users"), ("", "groups"), ("", "serviceaccounts"), ("authentication.k8s.io", "*")]:
        check(has(g, res, "impersonate"), f"{render}: ClusterRole lacks impersonate {res}")
    check(has("authentication.k8s.io", "tokenreviews", "create"), f"{render}: ClusterRole lacks tokenreviews create")
    check(has("authorization.k8s.io", "subjectaccessreviews", "create"), f"{render}: ClusterRole lacks subjectaccessreviews create")
    # Tenant-created namespaces are created and deleted by Canopy on the tenant's behalf.
    for v in ["get", "list", "watch", "create", "update", "patch", "delete"]:
        check(has("", "namespaces", v), f"{render}: ClusterRole lacks namespaces {v}")
    check(has("", "namespaces/status", "get"), f"{render}: ClusterRole lacks namespaces/status get")
    for v in ["get", "list", "watch", "create", "update", "patch", "delete"]:
        for g, res in [("rbac.authorization.k8s.io", "rolebindings"), ("rbac.authorization.k8s.io", "roles"),
                       ("rbac.authorization.k8s.io", "clusterroles"), ("", "configmaps"), ("", "secrets")]:
            check(has(g, res, v), f"{render}: ClusterRole lacks {res} {v}")
    bindable = ["admin", "edit", "view"] + [f"canopy:role:{n}" for n in (tree.get("roles") or {})]
    check(has("rbac.authorization.k8s.io", "clusterroles", "bind", tuple(bindable)), f"{render}: ClusterRole lacks bind on {bindable}")
    check(has("rbac.authorization.k8s.io", "clusterroles", "escalate"), f"{render}: ClusterRole lacks clusterroles escalate")
    for g, res in [("storage.k8s.io", "storageclasses"), ("networking.k8s.io", "ingressclasses")]:
        check(has(g, res, "get"), f"{render}: ClusterRole lacks {res} get (claims and Ingresses name existing classes)")
    crb = one(objs, "ClusterRoleBinding", render)
    check(crb.get("roleRef", {}).get("name") == cr["metadata"]["name"]
          and {"kind": "ServiceAccount", "name": "canopy", "namespace": NS} in crb.get("subjects", []), f"{render}: ClusterRoleBinding")
    role = objs.get(("Role", "canopy-leader-election"), {})
    lease_rules = role.get("rules", [])
    check(any("canopy-reconciler" in r.get("resourceNames", []) and {"get", "update"} <= set(r["verbs"])
              and r["resources"] == ["leases"] and r["apiGroups"] == ["coordination.k8s.io"] for r in lease_rules)
          and any("create" in r["verbs"] and not r.get("resourceNames") for r in lease_rules),
          f"{render}: lease Role for canopy-reconciler (create, get, update)")
    rb = objs.get(("RoleBinding", "canopy-leader-election"), {})
    check(rb.get("roleRef", {}).get("name") == "canopy-leader-election"
          and {"kind": "ServiceAccount", "name": "canopy", "namespace": NS} in rb.get("subjects", []), f"{render}: lease RoleBinding")
    return dep, config

# Defaults.
d = load("defaults.yaml")
dep, config = common(d, "defaults", values["tree"])
check(dep["spec"].get("replicas") == 2, f"defaults: replicas {dep['spec'].get('replicas')} != 2")
check(not any(k in ("HorizontalPodAutoscaler", "ServiceMonitor") for k, _ in d), "defaults: HPA/ServiceMonitor must be off")
check(config["upstream"] == {"protocol": "streams"}, f"defaults: upstream {config['upstream']} (in-cluster needs no kubeconfig)")
check(set(config["server"]["tls"]) == {"generatedDir", "extraSans"}, f"defaults: tls {config['server']['tls']}")
check("canopy.canopy-system.svc" in config["server"]["tls"]["extraSans"], "defaults: the Service DNS name is a SAN")
check(config["server"]["publicUrl"] == "https://canopy.canopy-system.svc", f"defaults: publicUrl {config['server']['publicUrl']}")
ca = d.get(("Secret", "canopy-ca"), {})
check(set(ca.get("data", {})) == {"ca.crt", "ca.key"}, "defaults: CA Secret canopy-ca with ca.crt and ca.key")
gen = volume(dep, "generated")
check(gen and gen.get("secret", {}).get("secretName") == "canopy-ca", "defaults: the generated dir is the CA Secret")
check(mount(container(dep), "generated")["mountPath"] == config["server"]["tls"]["generatedDir"], "defaults: generatedDir is the CA mount")
np = one(d, "NetworkPolicy", "defaults")
rules = {tuple(p["port"] for p in r["ports"]): r for r in np["spec"]["ingress"]}
check("from" not in rules[("https",)], "defaults: the serving port is open to anyone")
check(rules[("admin",)].get("from") == [{"podSelector": {}}], "defaults: the admin port is open to the namespace only")
if ca.get("data"):
    import base64, subprocess, tempfile
    key = base64.b64decode(ca["data"]["ca.key"]).decode()
    crt = base64.b64decode(ca["data"]["ca.crt"]).decode()
    check("-----BEGIN PRIVATE KEY-----" in key, "defaults: the CA key must be PKCS#8 (Canopy loads no other form)")
    check("-----BEGIN CERTIFICATE-----" in crt, "defaults: ca.crt is a PEM certificate")
    if subprocess.run(["sh", "-c", "command -v openssl"], capture_output=True).returncode == 0:
        with tempfile.NamedTemporaryFile("w", suffix=".crt") as f:
            f.write(crt); f.flush()
            out = subprocess.run(["openssl", "x509", "-in", f.name, "-noout", "-text"], capture_output=True, text=True).stdout
        check("CA:TRUE" in out and "ED25519" in out.upper(), "defaults: ca.crt is an Ed25519 CA certificate")

# Every optional feature on.
f = load("features.yaml")
dep, config = common(f, "features", features_values["tree"])
check("replicas" not in dep["spec"], "features: with the HPA, the Deployment must not set replicas")
hpa = one(f, "HorizontalPodAutoscaler", "features")
check(hpa.get("apiVersion") == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
      and hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 5, "features: HPA autoscaling/v2 on the Deployment")
check({m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}, "features: HPA cpu and memory targets")
sm = one(f, "ServiceMonitor", "features")
check(sm.get("apiVersion") == "monitoring.coreos.com/v1" and sm["spec"]["endpoints"][0]["port"] == "admin"
      and sm["spec"]["endpoints"][0]["path"] == "/metrics" and sm["metadata"]["labels"].get("release") == "kube-prometheus-stack",
      "features: ServiceMonitor on the admin port")
tls = volume(dep, "tls")
check(tls and tls.get("secret", {}).get("secretName") == "canopy-serving-tls", "features: TLS Secret volume")
tlsdir = mount(container(dep), "tls")["mountPath"]
check(config["server"]["tls"] == {"certFile": f"{tlsdir}/tls.crt", "keyFile": f"{tlsdir}/tls.key"}, f"features: tls {config['server']['tls']}")
check(("Secret", "canopy-ca") not in f and volume(dep, "generated") is None, "features: no CA with a serving Secret")
check(volume(dep, "client-ca")["secret"]["secretName"] == "canopy-client-ca" and config["server"]["clientCaFile"].endswith("/ca.crt"), "features: client CA")
check(volume(dep, "tokens")["secret"]["secretName"] == "canopy-tokens" and config["authentication"]["tokenFile"].endswith("/tokens.csv"), "features: token file")
check(volume(dep, "upstream")["secret"]["secretName"] == "canopy-upstream"
      and config["upstream"] == {"protocol": "streams", "kubeconfig": config["upstream"]["kubeconfig"], "context": "admin@prod"}, "features: upstream kubeconfig")
check(config["server"]["publicUrl"] == "https://canopy.example.com", "features: publicUrl")
check(container(dep).get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds") == 5, "features: preStop sleep")
cr = one(f, "ClusterRole", "features")
bind = next(r for r in cr["rules"] if r["verbs"] == ["bind"])
check({"canopy:role:deployer", "cluster-reader-lite"} <= set(bind["resourceNames"]), f"features: bind {bind['resourceNames']}")
np = one(f, "NetworkPolicy", "features")
rules = {tuple(p["port"] for p in r["ports"]): r for r in np["spec"]["ingress"]}
check(rules[("https",)].get("from") == [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "features: servingFrom")
check(len(rules[("admin",)].get("from", [])) == 2, "features: adminFrom")
svc = one(f, "Service", "features")
check(svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"], "features: Service type")

# Hot reload: another tree changes the ConfigMap, never the pod template.
o = load("other-tree.yaml")
pod_t = lambda objs: one(objs, "Deployment", "?")["spec"]["template"]
check(pod_t(o) == pod_t(d), "other tree: the pod template changed, so a tree change would restart pods")
check(o[("ConfigMap", "canopy-config")]["data"] != d[("ConfigMap", "canopy-config")]["data"], "other tree: the ConfigMap must change")
common(o, "other-tree", {"domain": "example.org", "nodes": [{"name": "solo", "namespaces": ["main"],
       "members": [{"kind": "User", "name": "zed", "role": "view"}]}], "roles": {}, "controllers": []})
s = load("other-settings.yaml")
ann = lambda objs: pod_t(objs)["metadata"]["annotations"]["checksum/settings"]
check(ann(s) != ann(d), "other settings: a start-time setting must roll the pods (checksum/settings)")
threads = lambda objs, name: common(objs, name, values["tree"])[1]["server"].get("workerThreads")
check(threads(s, "other-settings") == 2 and threads(d, "defaults") is None, "workerThreads: set only when given")

# Per-pod CA: an emptyDir, no CA Secret.
p = load("per-pod-ca.yaml")
dep, config = common(p, "per-pod-ca", values["tree"])
gen = volume(dep, "generated")
check(gen and "emptyDir" in gen and ("Secret", "canopy-ca") not in p, "per-pod-ca: generated dir is an emptyDir")
check(not mount(container(dep), "generated").get("readOnly"), "per-pod-ca: generated dir is writable")
b = load("ca-secret.yaml")
dep, config = common(b, "ca-secret", values["tree"])
check(volume(dep, "generated")["secret"]["secretName"] == "my-ca" and ("Secret", "canopy-ca") not in b, "ca-secret: uses my-ca")

print(f"checked {len(d)} default objects, {len(f)} with features on; {len(failures)} failures")
sys.exit(1 if failures else 0)
PY

step "NOTES.txt"
# helm renders NOTES only on install; a copy of the chart renders it into a ConfigMap instead.
notes_chart=$work/notes-chart
cp -r "$CHART" "$notes_chart"
cp "$CHART/templates/NOTES.txt" "$notes_chart/notes.txt"
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: notes}' 'data:' '  notes: |' \
	'{{- tpl (.Files.Get "notes.txt") . | nindent 4 }}' >"$notes_chart/templates/zz-notes.yaml"
notes() { "$helm" template "$RELEASE" "$notes_chart" --namespace "$NAMESPACE" --show-only templates/zz-notes.yaml "$@"; }
out=$(notes)
for want in "/canopy kubeconfig --config /etc/canopy/config.yaml" "--user alice --view acme/web --token" \
	"exec deploy/canopy" "https://canopy.canopy-system.svc"; do
	echo "$out" | grep -qF -- "$want" || fail "NOTES.txt lacks: $want"
done
echo "$out" | grep -q WARNING && fail "NOTES.txt warns with the defaults"
notes --set tls.generated.createCA=false | grep -q "WARNING: tls.generated.createCA is false" ||
	fail "NOTES.txt does not warn about per-pod CAs with several replicas"
echo "NOTES.txt names the kubeconfig command; warns about per-pod CAs"

step "values that violate the schema are refused"
if out=$("$helm" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" -f "$CHART/ci/invalid.yaml" 2>&1); then
	fail "helm template accepted $CHART/ci/invalid.yaml"
fi
echo "$out" | grep -q "values don't meet the specifications of the schema" || fail "not a schema error: $out"
for key in replicaCount logFormat "tree/nodes/0/name" "tree/nodes/0/members/0/kind" unknownKey; do
	echo "$out" | grep -q -- "$key" || fail "the schema error does not name $key: $out"
done
if "$helm" lint "$CHART" -f "$CHART/ci/invalid.yaml" >/dev/null 2>&1; then
	fail "helm lint accepted $CHART/ci/invalid.yaml"
fi
for bad in "--set=unknownTopLevel=1" "--set=tls.generated.createCA=maybe" "--set=service.port=70000" \
	"--set=publicUrl=http://plain" "--set-json=tree.nodes=[{\"name\":\"a\",\"allow\":{\"subresources\":[\"shell\"]}}]"; do
	if "$helm" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$bad" >/dev/null 2>&1; then
		fail "helm template accepted $bad"
	fi
done
echo "refused: ci/invalid.yaml and 5 single bad values"

step "the canopy binary with the rendered config and CA"
# Optional: needs a built Canopy (target/release/canopy, or CANOPY_BIN); this script never builds.
canopy=${CANOPY_BIN:-target/release/canopy}
if [ -x "$canopy" ]; then
	# Lay out what a pod sees: the rendered config.yaml, and the chart's CA Secret as the
	# generated dir; addresses moved to loopback, upstream an unreachable apiserver.
	python3 - "$work" <<'PY'
import base64, os, sys, yaml
work = sys.argv[1]
for render in ("defaults", "features"):
    for d in yaml.safe_load_all(open(f"{work}/{render}.yaml")):
        if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config"):
            open(f"{work}/{render}-config.yaml", "w").write(d["data"]["config.yaml"])
        if render == "defaults" and d and d["kind"] == "Secret" and d["metadata"]["name"].endswith("-ca"):
            os.makedirs(f"{work}/ca", exist_ok=True)
            for key, value in d["data"].items():
                open(f"{work}/ca/{key}", "wb").write(base64.b64decode(value))
config = yaml.safe_load(open(f"{work}/defaults-config.yaml"))
config["server"].update(listen="127.0.0.1:0", adminListen="127.0.0.1:0", shutdownGraceSeconds=1)
config["server"]["tls"]["generatedDir"] = f"{work}/ca"
config["upstream"] = {"kubeconfig": f"{work}/upstream.kubeconfig"}
config["tree"] = {"nodes": [{"name": "acme", "namespaces": ["dev"], "members": [{"kind": "User", "name": "alice", "role": "admin"}]}]}
yaml.safe_dump(config, open(f"{work}/serve-config.yaml", "w"))
open(f"{work}/upstream.kubeconfig", "w").write(
    "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
    "clusters: [{name: x, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
    "users: [{name: x, user: {token: none}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n")
PY
	for render in defaults features; do
		"$canopy" check-config "$work/$render-config.yaml"
	done
	# The chart's CA (Ed25519, PKCS#8) must be one Canopy loads and signs its serving
	# certificate with, for the Service's DNS name, and the kubeconfig must trust it.
	chmod 0440 "$work"/ca/*
	"$canopy" kubeconfig --config "$work/serve-config.yaml" --user alice --token t0k --view acme >"$work/alice.kubeconfig"
	python3 - "$work" <<'PY' || fail "canopy kubeconfig does not trust the chart's CA"
import base64, json, subprocess, sys
work = sys.argv[1]
k = json.load(open(f"{work}/alice.kubeconfig"))
der = lambda pem: subprocess.run(["openssl", "x509", "-outform", "der"], input=pem, capture_output=True, check=True).stdout
assert der(base64.b64decode(k["clusters"][0]["cluster"]["certificate-authority-data"])) == der(open(f"{work}/ca/ca.crt", "rb").read())
assert k["clusters"][0]["cluster"]["server"] == "https://canopy.canopy-system.svc/v/acme", k["clusters"][0]["cluster"]["server"]
PY
	CANOPY_LOG_FORMAT=json "$canopy" serve --config "$work/serve-config.yaml" >"$work/serve.log" 2>&1 &
	serve_pid=$!
	addr=""
	for _ in $(seq 50); do
		addr=$(sed -n 's/.*"message":"serving","listen":"\([0-9.:]*\)".*/\1/p' "$work/serve.log" | head -1)
		[ -n "$addr" ] && break
		kill -0 "$serve_pid" 2>/dev/null || break
		sleep 0.1
	done
	verify=$(echo | openssl s_client -connect "$addr" -servername canopy.canopy-system.svc -CAfile "$work/ca/ca.crt" \
		-verify_return_error -verify_hostname canopy.canopy-system.svc 2>&1 </dev/null || true)
	kill "$serve_pid" 2>/dev/null || true
	wait "$serve_pid" 2>/dev/null || true
	[ -n "$addr" ] || fail "canopy serve did not start: $(cat "$work/serve.log")"
	echo "$verify" | grep -q "Verify return code: 0 (ok)" ||
		fail "the serving certificate does not verify against the chart's CA for canopy.canopy-system.svc: $verify"
	echo "canopy serve at $addr: certificate for canopy.canopy-system.svc verified against the chart's CA"
else
	echo "skipped: no $canopy (build it, or set CANOPY_BIN)"
fi
step ""
