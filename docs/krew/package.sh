#!/usr/bin/env bash
# Packages the release binary for krew: target/krew/canopy-vVERSION-linux-amd64.tar.gz and
# target/krew/canopy.yaml, the manifest of this folder with version, address and checksum filled
# in. BASE_URL is where the archive will be published (default: the folder it is written to).
#   docs/krew/package.sh [BASE_URL]
#   kubectl krew install --manifest=target/krew/canopy.yaml --archive=target/krew/canopy-v*.tar.gz
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/krew"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
base_url="${1:-file://$out}"
binary="$root/target/release/canopy"
[ -x "$binary" ] || (cd "$root" && cargo build --release --locked --bin canopy)

archive="$out/canopy-v$version-linux-amd64.tar.gz"
mkdir -p "$out"
# Fixed owner and times: the same binary always gives the same archive and checksum.
tar --create --gzip --file "$archive" --directory "$(dirname "$binary")" \
	--owner=0 --group=0 --numeric-owner --mtime=@0 canopy
sha256="$(sha256sum "$archive" | cut -d' ' -f1)"
sed -e "s|@VERSION@|$version|g" -e "s|@BASE_URL@|$base_url|g" -e "s|@SHA256@|$sha256|g" \
	"$root/docs/krew/canopy.yaml" >"$out/canopy.yaml"
echo "$out/canopy.yaml"
echo "$archive"
