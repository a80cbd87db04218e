#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install every pinned
# dependency plus diffusion_lib itself (editable). Sourced by build_book.sh and test.sh, or run
# on its own: bash scripts/setup_env.sh
#
# Before any long step it checks what the later steps need and stops with one line naming the
# fix: a Python >= 3.11 ($PYTHON, python3.13, python3.12, python3.11, python3), npm with
# Node >= 18 (the book's offline web assets), and, when test.sh asks for it
# (DIFFUSION_BOOK_NEED_CHROMIUM=1), a Chromium for the browser tests.
# torch is the CPU build: on Linux from PyTorch's CPU wheel index (falling back to the default
# index, quickly and with one line, where that index cannot be reached); elsewhere (macOS) the
# default index already serves the CPU build.
# Re-running is cheap: a stamp file records the hash of the pin files that were installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DIFFUSION_BOOK_VENV:-$ROOT/.venv}"
TORCH_VERSION="2.13.0"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"

_setup_fail() {
  echo "[setup] error: $*" >&2
  # sourced: return to the caller (which runs under set -e); run directly: exit
  return 1 2>/dev/null || exit 1
}

# ---------------------------------------------------------------- a Python >= 3.11
_python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; }
if [ -x "$VENV/bin/python" ]; then
  _python_ok "$VENV/bin/python" || _setup_fail "$VENV uses $("$VENV/bin/python" -V 2>&1); the book needs Python >= 3.11: delete $VENV and rerun"
  BASE_PYTHON="$VENV/bin/python"
else
  BASE_PYTHON=""
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && _python_ok "$candidate"; then
      BASE_PYTHON="$(command -v "$candidate")"
      break
    fi
  done
  [ -n "$BASE_PYTHON" ] || _setup_fail "no Python >= 3.11 found (tried ${PYTHON:+\$PYTHON=$PYTHON, }python3.13, python3.12, python3.11, python3): install Python 3.11 or newer (e.g. apt-get install python3.11-venv, or python.org) or set PYTHON=/path/to/python3.11"
  "$BASE_PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || _setup_fail "$BASE_PYTHON has no venv/ensurepip module: install it (Debian/Ubuntu: apt-get install python3-venv)"
fi

# ---------------------------------------------------------------- npm, Node >= 18
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  _setup_fail "npm not found (the book serves its own JavaScript, installed with npm): install Node.js >= 18 with npm (Debian/Ubuntu: apt-get install nodejs npm; macOS: brew install node)"
fi
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
[ "$node_major" -ge 18 ] || _setup_fail "Node.js $(node --version 2>/dev/null) is too old: install Node.js >= 18 (https://nodejs.org or your package manager)"

# ---------------------------------------------------------------- a Chromium, for test.sh
DIFFUSION_BOOK_PLAYWRIGHT_CHROMIUM=""
if [ "${DIFFUSION_BOOK_NEED_CHROMIUM:-0}" = "1" ]; then
  found=""
  if [ -n "${CHROMIUM:-}" ]; then
    [ -x "$CHROMIUM" ] || command -v "$CHROMIUM" >/dev/null 2>&1 || _setup_fail "CHROMIUM=$CHROMIUM is not an executable: point it at a Chromium or unset it"
    found="$CHROMIUM"
  else
    for candidate in /usr/bin/chromium chromium chromium-browser google-chrome; do
      if command -v "$candidate" >/dev/null 2>&1; then found="$(command -v "$candidate")"; break; fi
    done
  fi
  if [ -z "$found" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] no Chromium found: installing Debian's chromium for the browser tests (apt-get)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
      || _setup_fail "apt-get install chromium failed: install a Chromium by hand or set CHROMIUM=/path/to/chromium"
    found="/usr/bin/chromium"
  fi
  if [ -n "$found" ]; then
    export CHROMIUM="$found"
    echo "[setup] browser tests will use $CHROMIUM"
  else
    DIFFUSION_BOOK_PLAYWRIGHT_CHROMIUM=1
    echo "[setup] no Chromium found: will install Playwright's own (python -m playwright install chromium) after the Python packages"
  fi
fi

# ---------------------------------------------------------------- the virtual environment
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV with $("$BASE_PYTHON" -V 2>&1)"
  "$BASE_PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

# torch: the CPU build. Linux: PyTorch's CPU index when it answers within a few seconds.
DIFFUSION_BOOK_TORCH_PIP_ARGS=""
if [ "$(uname -s)" = "Linux" ]; then
  if python -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=5)" "$TORCH_CPU_INDEX" >/dev/null 2>&1; then
    DIFFUSION_BOOK_TORCH_PIP_ARGS="--index-url $TORCH_CPU_INDEX"
  else
    echo "[setup] PyTorch's CPU wheel index cannot be reached: installing torch==$TORCH_VERSION from the default index (on this Linux it may be the CUDA build)"
  fi
fi
export DIFFUSION_BOOK_TORCH_PIP_ARGS

stamp="$VENV/.diffusion-book-installed"
want="$(cat "$ROOT/requirements.txt" "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned requirements (torch==$TORCH_VERSION first, CPU build)"
  # shellcheck disable=SC2086
  python -m pip install --quiet $DIFFUSION_BOOK_TORCH_PIP_ARGS "torch==$TORCH_VERSION"
  python -m pip install --quiet -r "$ROOT/requirements.txt" -c "$ROOT/constraints.txt"
  python -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT"
  python -m pip check
  echo "$want" > "$stamp"
else
  echo "[setup] environment up to date ($VENV)"
fi

if [ -n "$DIFFUSION_BOOK_PLAYWRIGHT_CHROMIUM" ]; then
  python -m playwright install chromium >/dev/null 2>&1 \
    || _setup_fail "could not download Playwright's Chromium (no network?): install Chromium (e.g. apt-get install chromium) or set CHROMIUM=/path/to/chromium"
  CHROMIUM="$(python "$ROOT/tests/browser/chromium.py")" || _setup_fail "Playwright's Chromium is not where Playwright says it is: run python -m playwright install chromium"
  export CHROMIUM
  echo "[setup] browser tests will use Playwright's Chromium ($CHROMIUM)"
fi
export PYTHONHASHSEED=0
