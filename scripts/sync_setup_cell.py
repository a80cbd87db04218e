#!/usr/bin/env python
"""The set-up cell of every chapter, written once here, and the tool that puts it in place.

Cell 0 of every notebook in ``book/`` is the same hidden set-up cell (``SETUP_CELL``). Where
``diffusion_lib`` is already importable (a local checkout, Binder, CI) it only points the
library at the shipped checkpoints when a clone is there, and otherwise does nothing. Where it
is missing (Colab, a bare Jupyter) it clones the book's repository, installs the library with
``--no-deps`` and then only the dependencies that are missing or older than ``pyproject.toml``
asks for, never torch: the torch that is there is kept (a pip constraint pins it), and a line
says so when it is older than the supported range. ipywidgets is never upgraded inside the
running kernel: the book supports Colab's 7.7.

Usage:
  python scripts/sync_setup_cell.py           # rewrite cell 0 of every book/*.ipynb (idempotent)
  python scripts/sync_setup_cell.py --check   # exit 1 and list the notebooks whose cell 0 differs

Only cell 0's source is written (in place in the file's text: every other byte stays as it was);
a notebook that already has the canonical cell is not touched at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
REPOSITORY = "https://github.com/diffusion-book/diffusion-book"

SETUP_CELL = r'''# Set-up for Colab or a bare Jupyter: fetch the book's repository and install its library, plus
# only what is missing, on top of the torch already there (never reinstalled). Where diffusion_lib
# is already importable (a local checkout, Binder, CI) this does nothing.
import importlib, importlib.metadata, importlib.util, os, re, subprocess, sys, tempfile
if importlib.util.find_spec("diffusion_lib") is None:
    if sys.version_info < (3, 11):
        raise RuntimeError(f"the book needs Python 3.11 or newer; this kernel runs {sys.version.split()[0]}")
    import tomllib
    if not os.path.isdir("diffusion-book"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "REPOSITORY"], check=True)
    def _version(v):
        return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])
    def _installed(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None
    with open("diffusion-book/pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    lower = dict(re.fullmatch(r"([A-Za-z0-9._-]+)>=([0-9.]+)", d.replace(" ", "")).groups() for d in deps)
    torch = _installed("torch")
    if torch is None:
        raise RuntimeError("torch is not installed: install it (Linux: pip install torch --index-url "
                           "https://download.pytorch.org/whl/cpu; macOS: pip install torch), then rerun this cell")
    if _version(torch) < _version(lower["torch"]):
        print(f"torch {torch} is older than the book supports (torch>={lower['torch']}); some cells may fail")
    have = {name: _installed(name) for name in lower if name != "torch"}
    needed = [f"{n}>={lo}" for n, lo in lower.items() if n in have and (have[n] is None or _version(have[n]) < _version(lo))]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as keep:
        keep.write(f"torch=={torch}\n")  # a pip constraint: the torch that is there stays
    pip = [sys.executable, "-m", "pip", "install", "-q", "-c", keep.name]
    subprocess.run(pip + ["--no-deps", "./diffusion-book"], check=True)
    if needed:
        subprocess.run(pip + needed, check=True)
        if any(have[n.split(">=")[0]] for n in needed):
            print("Upgraded " + ", ".join(needed) + ": restart the kernel (Colab: Runtime > Restart session), then rerun")
    importlib.invalidate_caches()
if os.path.isdir("diffusion-book/checkpoints"):  # the shipped models some chapters load
    os.environ.setdefault("DIFFUSION_BOOK_CHECKPOINTS", os.path.abspath("diffusion-book/checkpoints"))'''.replace(
    "REPOSITORY", REPOSITORY
)

HIDE_TAG = "hide-cell"


def source_lines(text: str) -> list[str]:
    """A cell source as nbformat stores it: lines with their newline, the last without."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def notebooks(book: Path = BOOK) -> list[Path]:
    return sorted(book.glob("*.ipynb"))


def cell0_is_canonical(nb: dict) -> bool:
    cells = nb.get("cells") or []
    if not cells or cells[0].get("cell_type") != "code":
        return False
    cell = cells[0]
    return "".join(cell.get("source", [])) == SETUP_CELL and HIDE_TAG in cell.get("metadata", {}).get("tags", [])


def _replace_cell0_source(text: str, new_lines: list[str]) -> str:
    """``text`` (a notebook's JSON) with only the ``source`` list of its first cell replaced.

    The list is found in the text itself and written back in nbformat's layout at the same
    indentation, so the key order and formatting of the rest of the file stay byte for byte.
    """
    decoder = json.JSONDecoder()
    cells_at = text.index('"cells"')
    key_at = text.index('"source"', cells_at)
    list_at = text.index("[", key_at)
    _, end = decoder.raw_decode(text, list_at)
    line_start = text.rfind("\n", 0, key_at) + 1
    indent = key_at - line_start
    if new_lines:
        items = ",\n".join(" " * (indent + 1) + json.dumps(line, ensure_ascii=False) for line in new_lines)
        block = "[\n" + items + "\n" + " " * indent + "]"
    else:
        block = "[]"
    return text[:list_at] + block + text[end:]


def sync(path: Path) -> bool:
    """Make cell 0 of ``path`` the canonical set-up cell; return True when the file changed."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    if cell0_is_canonical(nb):
        return False
    cells = nb.get("cells") or []
    if not cells or cells[0].get("cell_type") != "code" or "set-up" not in "".join(cells[0].get("source", [])).lower():
        raise SystemExit(f"{path}: cell 0 is not a set-up cell; add one by hand first (a code cell), then rerun")
    cell = cells[0]
    lines = source_lines(SETUP_CELL)
    if HIDE_TAG in cell.get("metadata", {}).get("tags", []) and not cell.get("outputs"):
        new_text = _replace_cell0_source(text, lines)
        expected = json.loads(text)
        expected["cells"][0]["source"] = lines
        if json.loads(new_text) == expected:
            path.write_text(new_text, encoding="utf-8")
            return True
    # the cell also needs its tag or has outputs: rewrite the file in nbformat's own layout
    cell["source"] = lines
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if HIDE_TAG not in tags:
        tags.append(HIDE_TAG)
    cell["outputs"] = []
    cell["execution_count"] = None
    path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the canonical set-up cell into cell 0 of every chapter.")
    parser.add_argument("--check", action="store_true", help="only report notebooks whose cell 0 differs")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every book/*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or notebooks()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    if args.check:
        differ = [p for p in paths if not cell0_is_canonical(json.loads(p.read_text(encoding="utf-8")))]
        for p in differ:
            print(f"set-up cell differs: {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
        if differ:
            print(f"{len(differ)} notebook(s) differ: run `python scripts/sync_setup_cell.py`")
        return 1 if differ else 0
    changed = [p for p in paths if sync(p)]
    for p in changed:
        print(f"updated cell 0 of {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    print(f"{len(changed)} notebook(s) updated, {len(paths) - len(changed)} already had the set-up cell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
