#!/usr/bin/env bash
# Run every test: the library tests, every notebook under nbval, and the book build with
# warnings as errors. Usage: bash scripts/test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/setup_env.sh
start=$SECONDS
echo "[test] building the book with -W"
bash scripts/build_book.sh
echo "[test] library tests and notebooks under nbval"
python -m pytest -p no:cacheprovider tests book --nbval-lax
echo "[test] all tests done in $((SECONDS - start)) s"
