#!/usr/bin/env bash
# Build the HTML book: set up .venv, execute every notebook, build _build/html with
# warnings as errors. Usage: bash scripts/build_book.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/setup_env.sh
start=$SECONDS
# The pages serve require.js, the ipywidgets manager and MathJax themselves (offline HTML):
# `npm ci` (skipped when node_modules matches package-lock.json), then copy into book/_vendor/.
python scripts/vendor_assets.py
jupyter-book build . --all -W --keep-going
echo "[book] built in $((SECONDS - start)) s. Open $ROOT/_build/html/index.html"
