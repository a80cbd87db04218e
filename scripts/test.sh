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
# The browser tests (tests/browser, collected below, after the build) drive Debian's Chromium
# through Playwright against _build/html. Install it when missing (CI runs as root).
if [ ! -x /usr/bin/chromium ]; then
  echo "[test] installing Debian chromium for the browser tests"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
echo "[test] library tests, browser tests of _build/html, and notebooks under nbval"
python -m pytest -p no:cacheprovider tests book --nbval-lax
echo "[test] all tests done in $((SECONDS - start)) s"
