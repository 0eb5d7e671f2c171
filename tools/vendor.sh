#!/usr/bin/env bash
# Refresh the vendored Swagger UI (served at /docs) from the npm registry:
#   tools/vendor.sh [version]      e.g. tools/vendor.sh 5.35.0
# Only the files /docs loads are kept, with the licence and the version.
set -euo pipefail
version="${1:-$(npm view swagger-ui-dist version)}"
dest="$(dirname "$0")/../inbox/web/static/vendor/swagger-ui"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
mkdir -p "$dest"
cp "$tmp/package/swagger-ui-bundle.js" "$tmp/package/swagger-ui.css" "$tmp/package/LICENSE" "$tmp/package/NOTICE" "$dest/"
echo "$version" > "$dest/VERSION"
echo "swagger-ui-dist $version -> $dest"
