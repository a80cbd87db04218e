#!/usr/bin/env bash
# Build the HTML book: set up .venv, execute every notebook, build _build/html with
# warnings as errors. Usage: bash scripts/build_book.sh
# (The whole-book PDF is a separate step: python scripts/make_pdf.py, after this one.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/setup_env.sh
start=$SECONDS
# The pages serve require.js, the ipywidgets manager and MathJax themselves (offline HTML):
# `npm ci` (skipped when node_modules matches package-lock.json), then copy into book/_vendor/.
python scripts/vendor_assets.py
# The execution cache keys each notebook on its own code only. The outputs also depend on
# diffusion_lib and the shipped checkpoints: when those changed since the last build, the
# cached outputs are stale, so the cache goes and every notebook runs again.
mkdir -p _build
lib_hash="$(find diffusion_lib checkpoints -type f \( -name '*.py' -o -name '*.pt' -o -name '*.json' \) -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [ -d _build/.jupyter_cache ] && [ "$(cat _build/.diffusion_lib_hash 2>/dev/null)" != "$lib_hash" ]; then
  echo "[book] diffusion_lib or the checkpoints changed since the last build: clearing the execution cache"
  rm -rf _build/.jupyter_cache
fi
echo "$lib_hash" > _build/.diffusion_lib_hash
jupyter-book build . --all -W --keep-going
echo "[book] built in $((SECONDS - start)) s. Open $ROOT/_build/html/index.html"
