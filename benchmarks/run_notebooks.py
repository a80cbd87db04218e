"""Execute every chapter of the book in a fresh kernel and print its time and memory budget.

Usage:
    python benchmarks/run_notebooks.py [--threads N] [--write-page] [NOTEBOOK ...]

For each notebook listed in ``_toc.yml`` (or given on the command line) this starts a fresh
kernel, runs the notebook top to bottom, and reports the wall seconds and the kernel's peak
resident memory (``ru_maxrss`` read inside the kernel after the last cell). Chapters report their
model-quality figures through ``diffusion_lib.utils.record_metric``; they are collected here and
printed after the budget table. ``--write-page`` also writes the measured table to
``book/_generated/budget_table.md``, which the "Running this book" page includes.

Budgets (2 cores): each chapter <= 120 s and <= 1.5 GB peak memory; all chapters <= 10 min, applied
with a margin (a 1.33x slower machine of the same kind, and 30 % in hand): <= 69 s per chapter and
<= 347 s in all as measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_BUDGET_S = 120.0
CHAPTER_MEMORY_GB = 1.5
TOTAL_BUDGET_S = 600.0
# Another machine of this kind ran the chapters 1.33x slower than this table shows, and 30 % of
# each budget must stay in hand, so the limits applied to the times measured here are smaller.
SLOWER_MACHINE = 1.33
MARGIN = 1.30
CHAPTER_SECONDS = CHAPTER_BUDGET_S / (SLOWER_MACHINE * MARGIN)   # ~69 s
TOTAL_SECONDS = TOTAL_BUDGET_S / (SLOWER_MACHINE * MARGIN)       # ~347 s

_PEAK_CELL = (
    "import resource as _r, sys as _s\n"
    "_k = 1 if _s.platform == 'darwin' else 1024\n"
    "print('PEAK_RSS_BYTES', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss * _k)"
)


def toc_notebooks() -> list[Path]:
    """Notebooks in the order of ``_toc.yml``."""
    files = re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def run_one(path: Path, metrics_file: Path, threads: int | None) -> dict:
    """Execute one notebook in a fresh kernel; return seconds, peak memory and status."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_CELL))
    env_before = dict(os.environ)
    os.environ["DIFFUSION_BOOK_METRICS"] = str(metrics_file)
    os.environ["DIFFUSION_BOOK_CHAPTER"] = path.stem
    if threads is not None:
        os.environ["DIFFUSION_BOOK_THREADS"] = str(threads)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as exc:  # report and go on with the next chapter
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    seconds = time.perf_counter() - start
    peak = None
    for out in nb.cells[-1].get("outputs", []):
        m = re.search(r"PEAK_RSS_BYTES (\d+)", out.get("text", ""))
        if m:
            peak = int(m.group(1))
    return {"chapter": path.stem, "seconds": seconds, "peak_bytes": peak, "error": error}


def format_table(rows: list[dict]) -> str:
    lines = [f"| chapter | wall time (s) | peak memory (GB) | within budget (≤ {CHAPTER_SECONDS:.0f} s, ≤ {CHAPTER_MEMORY_GB} GB) |",
             "|---|---:|---:|:---:|"]
    for r in rows:
        gb = r["peak_bytes"] / 1e9 if r["peak_bytes"] else float("nan")
        ok = (r["error"] is None and r["seconds"] <= CHAPTER_SECONDS
              and r["peak_bytes"] is not None and gb <= CHAPTER_MEMORY_GB)
        status = "yes" if ok else ("ERROR" if r["error"] else "NO")
        lines.append(f"| {r['chapter']} | {r['seconds']:.1f} | {gb:.2f} | {status} |")
    total = sum(r["seconds"] for r in rows)
    ok_total = "yes" if total <= TOTAL_SECONDS else "NO"
    lines.append(f"| **all chapters** (≤ {TOTAL_SECONDS:.0f} s) | **{total:.1f}** | | {ok_total} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads inside each kernel (default: torch's own choice)")
    parser.add_argument("--write-page", action="store_true",
                        help="write book/_generated/budget_table.md for the 'Running this book' page")
    args = parser.parse_args(argv)
    notebooks = [p.resolve() for p in args.notebooks] or toc_notebooks()
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 2

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        metrics_file = Path(tmp) / "metrics.jsonl"
        for path in notebooks:
            print(f"running {path.relative_to(ROOT)} ...", flush=True)
            row = run_one(path, metrics_file, args.threads)
            rows.append(row)
            print(f"  {row['seconds']:.1f} s, peak {((row['peak_bytes'] or 0) / 1e9):.2f} GB"
                  + (f"  [{row['error']}]" if row["error"] else ""), flush=True)
        metrics = ([json.loads(line) for line in metrics_file.read_text().splitlines()]
                   if metrics_file.exists() else [])

    table = format_table(rows)
    print()
    print(table)
    if metrics:
        print()
        print("| chapter | figure | value |")
        print("|---|---|---:|")
        for m in metrics:
            print(f"| {m.get('chapter') or ''} | {m['name']} | {m['value']:.4g} {m.get('unit', '')} |")

    if args.write_page:
        out = ROOT / "book" / "_generated" / "budget_table.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        omp = os.environ.get("OMP_NUM_THREADS")
        threads = (", one PyTorch thread per kernel (`OMP_NUM_THREADS=1`, as in the test command, where the "
                   "book build and the nbval run share the two cores)" if omp == "1"
                   else f", `OMP_NUM_THREADS={omp}`" if omp else ", PyTorch's default thread count")
        meta = (f"Measured on {date.today().isoformat()} with `python benchmarks/run_notebooks.py "
                f"--write-page` on a {os.cpu_count()}-core {platform.machine()} machine, "
                f"Python {platform.python_version()}{threads}.")
        body = [meta, "", table]
        if metrics:
            body += ["", "| chapter | figure | value |", "|---|---|---:|"]
            body += [f"| {m.get('chapter') or ''} | {m['name']} | {m['value']:.4g} {m.get('unit', '')} |"
                     for m in metrics]
        out.write_text("\n".join(body) + "\n", encoding="utf-8")
        print(f"\nwrote {out.relative_to(ROOT)}")
    failed = any(r["error"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
