#!/usr/bin/env bash
# Install the dashboard's browser libraries from npm and copy the files it serves
# into $1 (src/custodes/web/static/vendor).  Nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-src/custodes/web/static/vendor}
npm install --no-audit --no-fund --silent >/dev/null
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/leaflet" "$dest.tmp/htmx" "$dest.tmp/swagger-ui" "$dest.tmp/axe-core" "$dest.tmp/hls"
cp -r node_modules/leaflet/dist/. "$dest.tmp/leaflet/"
cp node_modules/htmx.org/dist/htmx.min.js "$dest.tmp/htmx/"
# Swagger UI for /docs, served from here: the staff origin loads nothing from a CDN.
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE; do
  cp "node_modules/swagger-ui-dist/$f" "$dest.tmp/swagger-ui/"
done
# hls.js, for the live-grant player (/access/live/ID/watch).
cp node_modules/hls.js/dist/hls.min.js node_modules/hls.js/LICENSE "$dest.tmp/hls/"
# axe-core, for the browser tests' accessibility checks (no page loads it).
cp node_modules/axe-core/axe.min.js node_modules/axe-core/LICENSE "$dest.tmp/axe-core/"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
