"""The built book as the browser tests see it: its folder, its pages, a localhost server."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HTML_DIR = Path(os.environ.get("BOOK_HTML_DIR", ROOT / "_build" / "html")).resolve()
SKIP_PAGES = {"search.html", "genindex.html", "py-modindex.html"}

NOT_BUILT = (
    f"The built book is missing: {HTML_DIR}/index.html does not exist. Build it first with "
    "`bash scripts/build_book.sh` (or point BOOK_HTML_DIR at a built _build/html folder)."
)


def discover_pages(html_dir: Path = HTML_DIR) -> list[str]:
    """Every content page of the build, as a path relative to the HTML folder."""
    if not (html_dir / "index.html").is_file():
        return []
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0].startswith("_") or rel.name in SKIP_PAGES:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if 'http-equiv="Refresh"' in text[:2000] or 'http-equiv="refresh"' in text[:2000]:
            continue  # the root index.html that only redirects to the first chapter
        pages.append(rel.as_posix())
    return pages


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@contextlib.contextmanager
def serve(html_dir: Path = HTML_DIR) -> Iterator[str]:
    """Serve ``html_dir`` on a free localhost port; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


#: Wait until the widget manager has rendered every embedded view and MathJax has typeset.
JS_WAIT_READY = """
async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  // the ipywidgets manager replaces each view <script> by a rendered widget
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
  for (let i = 0; i < 300; i++) {
    const pending = [...views].filter(s => !s.parentElement || !s.parentElement.querySelector('.jupyter-widgets, .lm-Widget'));
    if (views.length === 0 || pending.length === 0) break;
    await sleep(100);
  }
  if (document.querySelector('.math') && window.MathJax) {
    for (let i = 0; i < 300 && !(MathJax.startup && MathJax.startup.promise); i++) await sleep(100);
    if (MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  }
  return views.length;
}
"""
