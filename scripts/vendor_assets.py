"""Install the book's JavaScript with npm and copy the files the pages load into book/_vendor/.

The published book must work offline (in CI, on a laptop on a train): interactive figures
need require.js and the ipywidgets HTML manager, equations need MathJax 3. Instead of the
public CDNs that Sphinx and myst-nb use by default, the book serves pinned copies of them:

* ``package.json`` / ``package-lock.json`` pin the exact npm versions;
* this script runs ``npm ci`` (skipped when node_modules already matches the lock file) and
  copies only what the pages load into ``book/_vendor/`` (git-ignored);
* ``_config.yml`` lists ``book/_vendor`` in ``html_static_path`` so Sphinx copies it into
  ``_build/html/_static/``, and points ``nb_ipywidgets_js`` and ``mathjax_path`` at it.

Usage: ``python scripts/vendor_assets.py [--check]`` (``--check`` only verifies that the
vendored files are present and exits 1 if not).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "book" / "_vendor"
STAMP = NODE_MODULES / ".diffusion-book-npm-stamp"

# (source inside node_modules, destination inside book/_vendor, glob patterns to copy)
COPIES: list[tuple[str, str, list[str]]] = [
    ("requirejs", ".", ["require.js"]),
    ("requirejs", "licenses/requirejs", ["package.json"]),  # MIT; notice in require.js
    (
        "@jupyter-widgets/html-manager/dist",
        "jupyter-widgets",
        ["embed-amd.js", "*.woff2", "*.woff", "*.ttf", "*.eot", "*.svg"],
    ),
    ("@jupyter-widgets/html-manager", "licenses/html-manager", ["package.json", "dist/embed.js.LICENSE.txt"]),
    ("mathjax", "licenses/mathjax", ["LICENSE"]),
    (
        "mathjax/es5",
        "mathjax",
        [
            "tex-chtml.js",
            "input/tex/extensions/**/*.js",  # autoloaded TeX packages (\boldsymbol, \cancel, ...)
            "output/chtml/fonts/woff-v2/*.woff",  # the CHTML fonts, fetched relative to MathJax
            "ui/*.js",  # the right-click menu, loaded lazily
            "a11y/*.js",  # accessibility components the menu can switch on
        ],
    ),
]

# Files whose presence proves the copy happened; the browser tests rely on them.
REQUIRED = [
    "require.js",
    "jupyter-widgets/embed-amd.js",
    "mathjax/tex-chtml.js",
    "mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
]


def _lock_hash() -> str:
    data = (ROOT / "package.json").read_bytes() + (ROOT / "package-lock.json").read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def npm_ci() -> None:
    """Run ``npm ci`` unless node_modules was installed from the current lock file."""
    want = _lock_hash()
    if STAMP.is_file() and STAMP.read_text().strip() == want:
        print("[vendor] node_modules up to date with package-lock.json")
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(
            "[vendor] npm not found. Install Node.js (>= 18) and npm, e.g. "
            "`apt-get install -y nodejs npm`, then rerun this script."
        )
    print("[vendor] npm ci (exact versions from package-lock.json)")
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=ROOT,
        check=True,
    )
    STAMP.write_text(want + "\n")


def copy_assets() -> int:
    """Copy the files listed in COPIES into book/_vendor (replacing it); return bytes copied."""
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    total = 0
    for src, dst, patterns in COPIES:
        src_dir = NODE_MODULES / src
        if not src_dir.is_dir():
            sys.exit(f"[vendor] {src_dir} is missing: run `npm ci` in {ROOT}")
        for pattern in patterns:
            matches = sorted(p for p in src_dir.glob(pattern) if p.is_file())
            if not matches:
                sys.exit(f"[vendor] nothing in {src_dir} matches {pattern!r}; package changed?")
            for path in matches:
                target = VENDOR / dst / path.relative_to(src_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                total += path.stat().st_size
    # Sphinx must never read the vendored files as book pages.
    for md in VENDOR.rglob("*.md"):
        md.rename(md.with_suffix(".md.txt"))
    return total


def check() -> bool:
    missing = [f for f in REQUIRED if not (VENDOR / f).is_file()]
    for f in missing:
        print(f"[vendor] missing book/_vendor/{f}")
    return not missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check book/_vendor")
    args = parser.parse_args()
    if args.check:
        sys.exit(0 if check() else 1)
    npm_ci()
    total = copy_assets()
    if not check():
        sys.exit("[vendor] copy incomplete")
    print(f"[vendor] copied {total / 1e6:.1f} MB into {VENDOR.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
