#!/bin/sh
# Copies the front-end libraries from node_modules (after `npm ci`) into
# static/vendor/, where Django's staticfiles finds them. POSIX sh: the
# Dockerfile's asset stage runs it too.
set -eu
cd "$(dirname "$0")/.."
mkdir -p static/vendor
for src in node_modules/htmx.org/dist/htmx.min.js node_modules/chart.js/dist/chart.umd.js; do
  [ -f "$src" ] || { echo "error: $src missing; run npm ci" >&2; exit 1; }
  cmp -s "$src" "static/vendor/$(basename "$src")" || cp "$src" static/vendor/
done
