#!/usr/bin/env bash
# Install the dashboard's browser libraries from npm and copy the files it serves
# into $1 (src/custodes/web/static/vendor).  Nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-src/custodes/web/static/vendor}
npm install --no-audit --no-fund --silent >/dev/null
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/leaflet" "$dest.tmp/htmx"
cp -r node_modules/leaflet/dist/. "$dest.tmp/leaflet/"
cp node_modules/htmx.org/dist/htmx.min.js "$dest.tmp/htmx/"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
