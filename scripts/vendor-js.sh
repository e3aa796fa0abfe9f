#!/usr/bin/env bash
# Fetch the browser libraries from the npm registry into static/vendor/, with their
# licences. The results are committed, so running the system never needs Node or a CDN
# (the mall must load inside WeChat in mainland China). Run again after changing a version.
set -euo pipefail
cd "$(dirname "$0")/.."

# package@version  file-inside-the-package
LIBRARIES=(
  "htmx.org@2.0.11 dist/htmx.min.js"
  "jweixin-module@1.6.0 lib/index.js"
  "jsqr@1.4.0 dist/jsQR.js"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p static/vendor
: > static/vendor/VERSIONS.txt.new
for entry in "${LIBRARIES[@]}"; do
  spec=${entry%% *}
  file=${entry#* }
  name=${spec%@*}
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  tarball=$(ls "$work"/*.tgz)
  mkdir -p "$work/unpacked" "static/vendor/$name"
  tar -xzf "$tarball" -C "$work/unpacked"
  cp "$work/unpacked/package/$file" "static/vendor/$name/"
  cp "$work/unpacked/package/LICENSE"* "static/vendor/$name/" 2>/dev/null || true
  licence=$(node -e "console.log(require('$work/unpacked/package/package.json').license || 'see package')")
  echo "$spec $file licence=$licence" >> static/vendor/VERSIONS.txt.new
  rm -rf "$work/unpacked" "$tarball"
done
mv static/vendor/VERSIONS.txt.new static/vendor/VERSIONS.txt
cat static/vendor/VERSIONS.txt
