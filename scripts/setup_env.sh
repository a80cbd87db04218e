#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install every pinned
# dependency plus diffusion_lib itself (editable). Sourced by build_book.sh and test.sh.
# Re-running is cheap: a stamp file records the hash of the pin files that were installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DIFFUSION_BOOK_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

stamp="$VENV/.diffusion-book-installed"
want="$(cat "$ROOT/requirements.txt" "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned requirements (torch first, CPU wheel)"
  python -m pip install --quiet "torch==2.13.0"
  python -m pip install --quiet -r "$ROOT/requirements.txt" -c "$ROOT/constraints.txt"
  python -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT"
  python -m pip check
  echo "$want" > "$stamp"
else
  echo "[setup] environment up to date ($VENV)"
fi
export PYTHONHASHSEED=0
