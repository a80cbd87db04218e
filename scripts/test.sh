#!/usr/bin/env bash
# Run every test: the library tests, every notebook under nbval, the book build with warnings
# as errors, and the browser tests of the built book. Usage: bash scripts/test.sh
#
# The book build (which executes every notebook) and the pytest run (library tests plus every
# notebook under nbval) are independent, so they run side by side, one PyTorch thread each:
# on a 2-core machine that halves the wall time. The browser tests need the built book, so
# they run last.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/setup_env.sh
start=$SECONDS

# The browser tests drive Debian's Chromium through Playwright against _build/html.
# Install it when missing (CI runs as root).
if [ ! -x /usr/bin/chromium ]; then
  echo "[test] installing Debian chromium for the browser tests"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

export OMP_NUM_THREADS=1
mkdir -p _build
build_log="_build/test-build.log"
echo "[test] building the book with -W in the background (log: $build_log)"
bash scripts/build_book.sh >"$build_log" 2>&1 &
build_pid=$!

echo "[test] library tests and every notebook under nbval"
set +e
python -m pytest -p no:cacheprovider tests book --nbval-lax --ignore=tests/browser
unit_status=$?
wait "$build_pid"
build_status=$?
set -e
echo "[test] book build finished with status $build_status; its last lines:"
tail -n 15 "$build_log"
if [ "$build_status" -ne 0 ]; then
  echo "[test] FAILED: the book build (full log in $build_log):"
  grep -n -i -E "warning|error" "$build_log" | head -n 60 || true
  exit 1
fi
if [ "$unit_status" -ne 0 ]; then
  echo "[test] FAILED: library or notebook tests (exit $unit_status)"
  exit "$unit_status"
fi

echo "[test] browser tests of the built book (headless Chromium)"
python -m pytest -p no:cacheprovider tests/browser
echo "[test] all tests passed in $((SECONDS - start)) s"
