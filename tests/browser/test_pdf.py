"""The whole-book PDF (scripts/make_pdf.py): printed by the test Chromium, one frame per figure.

The first test prints a small page of two interactive figures through the same code path and
needs no book build. The second checks the book's PDF, which ``scripts/test.sh`` makes after
the browser tests (``BOOK_PDF_REQUIRED=1``); without it, it is skipped.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from diffusion_lib.viz import widgets as W

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("make_pdf", ROOT / "scripts" / "make_pdf.py")
make_pdf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_pdf)
BOOK_PDF = make_pdf.DEFAULT_OUT


def _page(tmp_path: Path, body: str) -> Path:
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / "book" / "intro.html").write_text(f"<!doctype html><html><body><h1>Book</h1>{body}</body></html>")
    (html / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    return html


def test_printing_shows_one_frame_of_each_figure(tmp_path, chromium_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(4)]
    body = W.scrubber(frames, labels=[1, 2, 3, 4])._repr_html_() + W.option_scrubber({"a": frames, "b": frames[::-1]})._repr_html_()
    html = _page(tmp_path, body)
    out = tmp_path / "book.pdf"
    pages, players = make_pdf.print_pdf(html, out)
    assert players == 2 and pages >= 1
    assert out.read_bytes().startswith(b"%PDF-")


def test_a_figure_that_would_print_every_frame_is_refused(tmp_path, chromium_path):
    rng = np.random.default_rng(1)
    player = W.scrubber([rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(3)])._repr_html_()
    broken = player.replace("display:none", "display:block")  # every frame shown
    html = _page(tmp_path, broken.replace("<script>", "<script>/*", 1).replace("</script>", "*/</script>", 1))
    with pytest.raises(make_pdf.PdfError, match="would print"):
        make_pdf.print_pdf(html, tmp_path / "x.pdf")


def test_the_book_pdf_exists_and_has_pages():
    if not BOOK_PDF.is_file():
        if os.environ.get("BOOK_PDF_REQUIRED") == "1":
            pytest.fail(f"{BOOK_PDF} is missing: python scripts/make_pdf.py did not write it", pytrace=False)
        pytest.skip("no book PDF yet (python scripts/make_pdf.py writes it)")
    data = BOOK_PDF.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = make_pdf.count_pages(BOOK_PDF)
    assert pages >= 50, f"the whole book printed on only {pages} pages"
