#!/usr/bin/env bash
# Pin k8s.io/kubernetes (and every k8s.io staging module it replaces with
# ./staging/src/...) in go.mod. Kubernetes' go.mod points its staging modules
# at local folders, and the published k8s.io/kubernetes module still requires
# them at v0.0.0, so a consumer must pin each one to v0.MINOR.PATCH itself.
#
#   ./gen-replace.sh              # re-pin for the version already in go.mod
#   ./gen-replace.sh v1.38.0      # upgrade: one command, then ./build.sh
#   ETCD_VERSION=v3.7.4 ./gen-replace.sh v1.38.0
set -euo pipefail
cd "$(dirname "$0")"

kube="${1:-$(go mod edit -json | python3 -c 'import json,sys
print(next(r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"]=="k8s.io/kubernetes"))')}"
staging="v0.${kube#v1.}" # v1.37.2 -> v0.37.2

gomod="$(go mod download -json "k8s.io/kubernetes@${kube}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
mods=$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => \./staging/src/.*#\1#p' "$gomod")
[ -n "$mods" ] || { echo "no staging replaces found in $gomod" >&2; exit 1; }

# Drop every existing k8s.io replace, then add the fresh set.
args=()
for old in $(go mod edit -json | python3 -c 'import json,sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["Old"]["Path"].startswith("k8s.io/"): print(r["Old"]["Path"])'); do
	args+=("-dropreplace=$old")
done
for m in $mods; do args+=("-replace=$m=$m@$staging"); done
args+=("-require=k8s.io/kubernetes@$kube")
[ -n "${ETCD_VERSION:-}" ] && args+=("-require=go.etcd.io/etcd/server/v3@$ETCD_VERSION")
go mod edit "${args[@]}"
echo "pinned k8s.io/kubernetes $kube and $(echo "$mods" | wc -w) staging modules at $staging"
go mod tidy
