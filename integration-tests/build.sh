#!/usr/bin/env bash
# Build the harness and kubectl into integration-tests/.bin/ (or $BIN_DIR). Go's own build
# cache makes this a few seconds when nothing changed; the first (cold) build
# on a fresh machine takes minutes.
set -euo pipefail
cd "$(dirname "$0")"

# The version the binaries report: the k8s.io/kubernetes version in go.mod.
# Unstamped, the server says v0.0.0-master+$Format:%H$ and kubectl cannot
# parse it.
kube="$(go mod edit -json | python3 -c 'import json,sys
print(next(r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"]=="k8s.io/kubernetes"))')"
major="${kube#v}"; major="${major%%.*}"
minor="${kube#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$kube -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

started=$SECONDS
echo "harness: fetching Go modules for Kubernetes $kube" >&2
go mod download
bin="${BIN_DIR:-.bin}" # BIN_DIR: build elsewhere (e.g. to time a cold build)
mkdir -p "$bin"
export CGO_ENABLED=0
echo "harness: building kube-apiserver, etcd, controllers and kubectl (a cold build compiles ~2,700 packages: about 10 minutes on 2 cores; seconds when cached)" >&2
# `go build -v` names each package it compiles: show a count every 100, so a cold build is not silent.
go build -v -trimpath -ldflags "$ldflags" -o "$bin/" ./cmd/harness ./cmd/kubectl ./cmd/clients 2>&1 |
	awk '/^(#|[^ ]+\.go:)/ { print > "/dev/stderr"; next } { n++ } n % 100 == 0 && n != last { last = n; printf "harness: %d packages compiled\n", n > "/dev/stderr" }'
status=("${PIPESTATUS[@]}")
[ "${status[0]}" = 0 ] || exit "${status[0]}"
# krew, to install the `kubectl canopy` plugin from its manifest as a platform team would
# (docs/krew/); a module of its own, outside the harness's replace block.
GOBIN="$(cd "$bin" && pwd)" go install -trimpath -ldflags "-s -w" sigs.k8s.io/krew/cmd/krew@v0.4.3
echo "harness: built in $((SECONDS - started))s" >&2
