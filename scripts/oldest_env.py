#!/usr/bin/env python
"""Build the oldest-versions environment and run the tests that prove the declared lower bounds.

``pyproject.toml`` promises ranges such as ``numpy>=1.24`` and ``ipywidgets>=7.7``. This script
makes a second virtual environment (``.venv-oldest``) with every dependency at exactly its
declared lower bound (``name==lower``; torch at 2.13.0, the only build these machines can
install), the Jupyter kernel of Colab (ipykernel 6.17.1) and the test tools, then runs there:

* the fast library tests (``OLDEST_TESTS``: the modules that exercise every dependency),
  including the dependency test and the widget tests;
* one chapter of each part of the book under nbval (``OLDEST_CHAPTERS``).

``scripts/test.sh`` runs it; re-running skips the install while the pins are unchanged.
Usage: ``python scripts/oldest_env.py [--install-only] [--venv PATH]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = ROOT / ".venv-oldest"
#: the only torch these machines can install; pyproject.toml supports torch>=2.4
TORCH_VERSION = "2.13.0"
#: test tools, and Colab's Jupyter kernel (the chapters run in it)
TOOL_PINS = [
    "ipykernel==6.17.1",
    "pytest==9.2.0",
    "nbval==0.11.0",
    "nbclient==0.11.0",
    "nbformat==5.11.1",
    "PyYAML==6.0.3",
]
#: library tests run in the oldest environment: every module that imports a dependency
#: (numpy, scipy via POT, scikit-learn, matplotlib, pillow, POT, einops, tqdm, ipywidgets)
OLDEST_TESTS = [
    "tests/test_dependencies.py",
    "tests/test_widgets.py",
    "tests/test_data.py",
    "tests/test_metrics.py",
    "tests/test_schedules.py",
    "tests/test_losses.py",
    "tests/test_plotting.py",
    "tests/test_unet.py",
    "tests/test_models_mlp.py",
    "tests/test_training.py",
    "tests/test_utils.py",
    "tests/test_checkpoints.py",
]
#: one chapter of each part of the book
OLDEST_CHAPTERS = [
    "book/forward_process.ipynb",
    "book/vae.ipynb",
    "book/swiss_roll_2015.ipynb",
    "book/unet.ipynb",
]


class SetupError(Exception):
    """A problem the user can fix; printed as one line."""


def library_pins(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``name==lower`` for every declared dependency (torch at ``TORCH_VERSION``)."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = []
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][^,;\s]*).*", dep)
        if not m:
            raise SetupError(f"pyproject.toml: {dep!r} has no lower bound (name>=X.Y); the oldest environment needs one")
        name, lower = m.groups()
        pins.append(f"torch=={TORCH_VERSION}" if name.lower() == "torch" else f"{name}=={lower}")
    return pins


def _stamp(pins: list[str]) -> str:
    data = "\n".join(pins + TOOL_PINS + OLDEST_TESTS).encode() + Path(__file__).read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        raise SetupError(f"{what} failed (exit {result.returncode}): {shlex.join(cmd)}")


def install(venv: Path) -> Path:
    """Create (or reuse) the environment; return its python."""
    pins = library_pins()
    python = venv / "bin" / "python"
    stamp = venv / ".diffusion-book-oldest"
    want = _stamp(pins)
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        print(f"[oldest] environment up to date ({venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv})")
        return python
    start = time.monotonic()
    if not python.is_file():
        print(f"[oldest] creating {venv}")
        _run([sys.executable, "-m", "venv", str(venv)], "creating the virtual environment")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # torch the way scripts/setup_env.sh found works here (CPU index, or the default one)
    torch_args = shlex.split(os.environ.get("DIFFUSION_BOOK_TORCH_PIP_ARGS", ""))
    print(f"[oldest] installing torch=={TORCH_VERSION} {' '.join(torch_args)}".rstrip())
    _run(pip + torch_args + [f"torch=={TORCH_VERSION}"], "installing torch")
    others = [p for p in pins if not p.startswith("torch==")]
    print(f"[oldest] installing the declared lower bounds: {' '.join(others)}")
    _run(pip + ["--only-binary=:all:", f"torch=={TORCH_VERSION}"] + others + TOOL_PINS, "installing the oldest versions")
    _run(pip + ["--no-deps", "--no-build-isolation", "-e", str(ROOT)], "installing diffusion_lib")
    stamp.write_text(want + "\n")
    print(f"[oldest] installed in {time.monotonic() - start:.0f} s")
    return python


def describe(python: Path) -> str:
    code = (
        "import importlib.metadata as m, sys;"
        "names = ['torch', 'numpy', 'scipy', 'scikit-learn', 'matplotlib', 'pillow', 'POT', 'einops', 'tqdm', 'ipywidgets', 'ipykernel'];"
        "print('Python %d.%d.%d, ' % sys.version_info[:3] + ', '.join(n + ' ' + m.version(n) for n in names))"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def run_tests(python: Path) -> int:
    print(f"[oldest] ENVIRONMENT: oldest supported versions: {describe(python)}")
    # PYDEVD_...: ipykernel 6.17's debugger would print four lines per kernel start
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0", PYDEVD_DISABLE_FILE_VALIDATION="1")
    missing = [p for p in OLDEST_TESTS + OLDEST_CHAPTERS if not (ROOT / p).is_file()]
    if missing:
        raise SetupError(f"listed in scripts/oldest_env.py but missing: {', '.join(missing)}")
    # the old matplotlib calls pyparsing's old names: deprecation warnings, not failures
    cmd = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "ignore::DeprecationWarning",
           "--nbval-lax", "--nbval-current-env",
           *OLDEST_TESTS, *OLDEST_CHAPTERS]
    print(f"[oldest] {' '.join(cmd[1:])}")
    start = time.monotonic()
    status = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    print(f"[oldest] tests finished with status {status} in {time.monotonic() - start:.0f} s")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="where to build it (default .venv-oldest)")
    parser.add_argument("--install-only", action="store_true", help="build the environment, run nothing")
    parser.add_argument("--pins", action="store_true", help="print the pins it installs and exit")
    args = parser.parse_args(argv)
    try:
        if args.pins:
            print("\n".join(library_pins() + TOOL_PINS))
            return 0
        python = install(args.venv.resolve())
        return 0 if args.install_only else run_tests(python)
    except SetupError as err:
        print(f"[oldest] error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
