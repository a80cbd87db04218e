#!/usr/bin/env bash
# Run every test. Usage: bash scripts/test.sh
#
# 1. In the book environment (.venv, the exact pins): the library tests and every notebook
#    under nbval, side by side with the book build (-W), one PyTorch thread each: on a 2-core
#    machine that halves the wall time. Meanwhile the oldest-versions environment
#    (.venv-oldest, every dependency at its declared lower bound) is installed.
# 2. The browser tests of the built book (headless Chromium), while the oldest-versions
#    environment runs its tests (scripts/oldest_env.py: library tests, widget tests, one
#    chapter of each part).
# 3. The whole-book PDF (scripts/make_pdf.py) and its test.
# Every section's output starts with the environment it runs in.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# setup_env.sh finds (or, as root on Debian, installs) the Chromium for the browser tests
export DIFFUSION_BOOK_NEED_CHROMIUM=1
# shellcheck disable=SC1091
. scripts/setup_env.sh
start=$SECONDS
export OMP_NUM_THREADS=1
mkdir -p _build
book_env="$(python -c 'import importlib.metadata as m, sys; print("Python %d.%d.%d, " % sys.version_info[:3] + ", ".join(n + " " + m.version(n) for n in ["torch", "numpy", "matplotlib", "ipywidgets", "ipykernel"]))')"

build_log="_build/test-build.log"
echo "[test] building the book with -W in the background (log: $build_log)"
bash scripts/build_book.sh >"$build_log" 2>&1 &
build_pid=$!
oldest_install_log="_build/test-oldest-install.log"
echo "[test] installing the oldest-versions environment in the background (log: $oldest_install_log)"
python scripts/oldest_env.py --install-only >"$oldest_install_log" 2>&1 &
oldest_install_pid=$!

echo "[test] ENVIRONMENT: book (.venv: $book_env)"
echo "[test] library tests and every notebook under nbval"
set +e
python -m pytest -p no:cacheprovider tests book --nbval-lax --ignore=tests/browser
unit_status=$?
wait "$build_pid"
build_status=$?
wait "$oldest_install_pid"
oldest_install_status=$?
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
if [ "$oldest_install_status" -ne 0 ]; then
  echo "[test] FAILED: installing the oldest-versions environment:"
  tail -n 20 "$oldest_install_log"
  exit 1
fi

oldest_log="_build/test-oldest.log"
echo "[test] oldest-versions environment: its tests run in the background (log: $oldest_log)"
python scripts/oldest_env.py >"$oldest_log" 2>&1 &
oldest_pid=$!
echo "[test] ENVIRONMENT: book (.venv: $book_env), browser: ${CHROMIUM:-?}"
echo "[test] browser tests of the built book (headless Chromium)"
set +e
python -m pytest -p no:cacheprovider tests/browser
browser_status=$?
wait "$oldest_pid"
oldest_status=$?
set -e
echo "[test] ---- oldest-versions environment (.venv-oldest), finished with status $oldest_status:"
{ grep -v -E "^\s*$|Warning|warnings.warn|_fontconfig_pattern|_mathtext|^  " "$oldest_log" || true; } | tail -n 40
if [ "$browser_status" -ne 0 ]; then
  echo "[test] FAILED: browser tests (exit $browser_status)"
  exit "$browser_status"
fi
if [ "$oldest_status" -ne 0 ]; then
  echo "[test] FAILED: the oldest-versions environment (full log in $oldest_log)"
  exit "$oldest_status"
fi

echo "[test] ENVIRONMENT: book (.venv), the whole-book PDF with ${CHROMIUM:-Chromium}"
python scripts/make_pdf.py
BOOK_PDF_REQUIRED=1 python -m pytest -p no:cacheprovider -q tests/browser/test_pdf.py
echo "[test] all tests passed in $((SECONDS - start)) s"
