#!/usr/bin/env python
"""Print the whole book to one PDF with the Chromium the browser tests use.

Sphinx's single-page HTML builder writes the book as one page (``_build/singlehtml``; the
notebooks come from the execution cache of the HTML build, so run ``scripts/build_book.sh``
first, or this runs them); headless Chromium opens it from a localhost server, waits until
MathJax has typeset every equation, and prints it with print styles: every interactive figure
shows a single frame (its first one, or the one it starts on) and no controls.

Usage: ``python scripts/make_pdf.py [--skip-build] [--out _build/pdf/book.pdf]``.
Exit status 1 with one line on any problem (no Chromium, a failed build, a figure that would
print more than one frame).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SINGLEHTML = ROOT / "_build" / "singlehtml"
DEFAULT_OUT = ROOT / "_build" / "pdf" / "book.pdf"
sys.path.insert(0, str(ROOT / "tests" / "browser"))


class PdfError(Exception):
    """A problem the user can fix; printed as one line."""


def build_singlehtml() -> Path:
    cmd = ["jupyter-book", "build", str(ROOT), "--builder", "singlehtml", "-W", "--keep-going"]
    exe = shutil.which("jupyter-book") or str(Path(sys.executable).parent / "jupyter-book")
    cmd[0] = exe
    print("[pdf] building the single-page HTML (notebooks from the execution cache)")
    log = ROOT / "_build" / "pdf-singlehtml.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        status = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise PdfError(f"the single-page build failed (exit {status}); see {log.relative_to(ROOT)}")
    return single_page(SINGLEHTML)


def single_page(html_dir: Path) -> Path:
    """The one page of a single-page build (``index.html`` may only redirect to it)."""
    index = html_dir / "index.html"
    if not index.is_file():
        raise PdfError(f"{index} is missing: run without --skip-build")
    m = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', index.read_text(encoding="utf-8")[:500], re.I)
    page = html_dir / m.group(1) if m else index
    if not page.is_file():
        raise PdfError(f"{page} (where {index.name} points) is missing")
    if page.parent != html_dir:
        # The root document lives in book/, but Sphinx writes the single page's links
        # (_static/, _images/) relative to the output folder: print a copy placed there.
        flat = html_dir / "_book_print.html"
        shutil.copyfile(page, flat)
        page = flat
    return page


#: every player's visible frames in print, and MathJax's state
_JS_PRINT_CHECK = r"""
() => {
  const players = [...document.querySelectorAll('.diffusion-scrubber')];
  const visible = players.map(p => [...p.querySelectorAll('img.ds-frame')]
    .filter(i => getComputedStyle(i).display !== 'none').length);
  const untypeset = [...document.querySelectorAll('.math')].filter(el => !el.querySelector('mjx-container')).length;
  return {players: players.length, visible, untypeset};
}
"""


def count_pages(pdf: Path) -> int:
    """Number of pages of a PDF written by Chromium (its page objects are not compressed)."""
    data = pdf.read_bytes()
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def print_pdf(html_dir: Path, out: Path) -> tuple[int, int]:
    try:
        return _print_pdf(html_dir, out)
    except PdfError:
        raise
    except Exception as err:  # Playwright's errors: keep the first line
        raise PdfError(f"printing failed: {str(err).strip().splitlines()[0]}") from None


def _print_pdf(html_dir: Path, out: Path) -> tuple[int, int]:
    from playwright.sync_api import sync_playwright

    from book_pages import JS_WAIT_READY, serve
    from chromium import FLAGS, INSTALL_HINT, find_chromium

    chromium = find_chromium()
    if chromium is None:
        raise PdfError(f"no Chromium found: {INSTALL_HINT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = single_page(html_dir).relative_to(html_dir).as_posix()
    user_dir = tempfile.mkdtemp(prefix="book-pdf-")
    try:
        with sync_playwright() as pw, serve(html_dir) as base:
            context = pw.chromium.launch_persistent_context(
                user_dir, executable_path=chromium, headless=True, args=FLAGS, viewport={"width": 1100, "height": 900}
            )
            context.set_default_timeout(180_000)
            page = context.new_page()
            page.goto(f"{base}/{rel}", wait_until="load", timeout=180_000)
            page.evaluate(JS_WAIT_READY)
            page.emulate_media(media="print")
            state = page.evaluate(_JS_PRINT_CHECK)
            bad = [i for i, n in enumerate(state["visible"]) if n != 1]
            if bad:
                raise PdfError(f"interactive figures {bad} would print {[state['visible'][i] for i in bad]} frames, not one")
            if state["untypeset"]:
                raise PdfError(f"{state['untypeset']} equations are not typeset by MathJax")
            page.pdf(path=str(out), format="A4", print_background=True, scale=0.8,
                     margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"})
            context.close()
    finally:
        shutil.rmtree(user_dir, ignore_errors=True)
    return count_pages(out), state["players"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-build", action="store_true", help="print the existing _build/singlehtml")
    parser.add_argument("--html", type=Path, default=SINGLEHTML, help="single-page HTML folder to print")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the PDF")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        if not args.skip_build:
            build_singlehtml()
        pages, players = print_pdf(args.html, args.out)
        if pages == 0:
            raise PdfError(f"{args.out} has no pages")
    except PdfError as err:
        print(f"[pdf] error: {err}", file=sys.stderr)
        return 1
    size = args.out.stat().st_size / 1e6
    print(f"[pdf] wrote {args.out} ({pages} pages, {size:.1f} MB, {players} interactive figures at one frame each) "
          f"in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
