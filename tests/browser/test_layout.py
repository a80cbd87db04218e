"""The layout of every page of the built book, measured in headless Chromium.

At 1280 px (a laptop) no display equation and no code cell or output may need sideways
scrolling; at 390 px (a phone) no page may scroll sideways as a whole; and no nbgrader solution
marker (``### BEGIN SOLUTION`` / ``### END SOLUTION``) may be visible in a code cell. Every
collapsed part of the page (hidden cells, solution dropdowns) is opened first, as a reader
would, so what it hides is measured too.

A failure lists each offending element page by page: for an equation its number (or its first
characters) and its width against the column's, for a code block its first line. Run
``python tests/browser/test_layout.py`` for the whole table without pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from book_pages import HTML_DIR, JS_WAIT_READY, NOT_BUILT, discover_pages, serve  # noqa: E402

PAGES = discover_pages()
WIDE, PHONE = 1280, 390

#: open everything a reader can open: <details> (hidden cells) and sphinx-togglebutton dropdowns
_JS_OPEN_ALL = """
async () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  document.querySelectorAll('.toggle-details__container, .toggle-details').forEach(e => { e.hidden = false; });
  await new Promise(r => setTimeout(r, 50));
}
"""

_JS_MEASURE_WIDE = r"""
() => {
  const main = document.querySelector('main .bd-article') || document.querySelector('article') || document.body;
  const style = getComputedStyle(main);
  const column = Math.round(main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight));
  const shown = el => el.offsetParent !== null || el.getClientRects().length > 0;
  const eqs = [];
  for (const el of document.querySelectorAll('mjx-container[display="true"]')) {
    if (!shown(el) || el.scrollWidth <= el.clientWidth + 1) continue;
    const host = el.closest('.math') || el.parentElement;
    const num = host && host.querySelector('.eqno');
    let tex = '';
    try {
      const items = MathJax.startup.document.getMathItemsWithin(el);
      if (items.length) tex = items[0].math;
    } catch (e) {}
    eqs.push({label: num ? num.textContent.replace('#', '').trim() : (host && host.id) || '',
              tex: tex.replace(/\s+/g, ' ').trim().slice(0, 60),
              width: el.scrollWidth, box: el.clientWidth});
  }
  const code = [];
  const seen = new Set();
  for (const el of document.querySelectorAll('div.cell_input pre, div.highlight pre, div.cell_output pre')) {
    if (seen.has(el)) continue;
    seen.add(el);
    if (!shown(el) || el.scrollWidth <= el.clientWidth + 1) continue;
    const kind = el.closest('div.cell_output') ? 'output' : 'code';
    const line = (el.textContent || '').split('\n').reduce((a, b) => (b.length > a.length ? b : a), '');
    code.push({kind, width: el.scrollWidth, box: el.clientWidth, line: line.trim().slice(0, 70)});
  }
  const markers = [];
  for (const el of document.querySelectorAll('div.cell_input pre, div.highlight pre')) {
    if (!shown(el)) continue;
    for (const line of (el.textContent || '').split('\n')) {
      if (/^\s*#+\s*(BEGIN|END) SOLUTION\b/.test(line)) markers.push(line.trim());
    }
  }
  return {column, eqs, code, markers};
}
"""

_JS_MEASURE_PHONE = r"""
() => {
  const doc = document.documentElement;
  const over = [];
  if (doc.scrollWidth > window.innerWidth) {
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.right > window.innerWidth + 1 && r.width > 0) {
        const parent = el.parentElement && el.parentElement.getBoundingClientRect();
        if (parent && parent.right > window.innerWidth + 1) continue;  // report the outermost
        over.push(`${el.tagName.toLowerCase()}.${[...el.classList].slice(0, 3).join('.')} (right edge ${Math.round(r.right)} px)`);
        if (over.length >= 5) break;
      }
    }
  }
  return {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, over};
}
"""


def measure_page(context, base: str, page_rel: str) -> dict:
    """The layout problems of one page: wide equations and code at 1280 px, overflow at 390 px."""
    page = context.new_page()
    try:
        page.set_viewport_size({"width": WIDE, "height": 900})
        page.goto(f"{base}/{page_rel}", wait_until="load")
        page.evaluate(JS_WAIT_READY)
        page.evaluate(_JS_OPEN_ALL)
        wide = page.evaluate(_JS_MEASURE_WIDE)
        page.set_viewport_size({"width": PHONE, "height": 844})
        page.wait_for_timeout(300)  # let MathJax and the theme re-lay the page out
        phone = page.evaluate(_JS_MEASURE_PHONE)
    finally:
        page.close()
    return {"page": page_rel, **wide, "phone": phone}


def problems_of(m: dict) -> list[str]:
    out = []
    for e in m["eqs"]:
        out.append(f"equation {e['label'] or '(unnumbered)'} '{e['tex']}' is {e['width']} px wide in a {e['box']} px box")
    for c in m["code"]:
        out.append(f"{c['kind']} block needs sideways scrolling ({c['width']} px in {c['box']} px): {c['line']!r}")
    for line in m["markers"]:
        out.append(f"visible solution marker: {line!r}")
    p = m["phone"]
    if p["scrollWidth"] > p["innerWidth"]:
        out.append(f"at {PHONE} px the page is {p['scrollWidth']} px wide: " + "; ".join(p["over"]))
    return out


@pytest.fixture(scope="module")
def book_server():
    if not (HTML_DIR / "index.html").is_file():
        pytest.fail(NOT_BUILT, pytrace=False)
    with serve() as base:
        yield base


@pytest.mark.parametrize("page_rel", PAGES or ["<book not built>"])
def test_page_fits_its_column_and_a_phone(page_rel, book_server, browser_context):
    if page_rel == "<book not built>":
        pytest.fail(NOT_BUILT, pytrace=False)
    m = measure_page(browser_context, book_server, page_rel)
    problems = problems_of(m)
    assert not problems, f"{page_rel} (text column {m['column']} px at {WIDE} px):\n  " + "\n  ".join(problems)


def _table() -> int:
    """Print the measurements of every page; return the number of problems."""
    import shutil
    import tempfile

    from playwright.sync_api import sync_playwright

    from chromium import FLAGS, find_chromium

    if not PAGES:
        print(NOT_BUILT)
        return 1
    total = {"eqs": 0, "code": 0, "markers": 0, "phone": 0}
    user_dir = tempfile.mkdtemp(prefix="book-layout-")
    with sync_playwright() as pw, serve() as base:
        context = pw.chromium.launch_persistent_context(
            user_dir, executable_path=find_chromium(), headless=True, args=FLAGS
        )
        print(f"{'page':34} {'column':>6} {'wide eqs':>8} {'wide code':>9} {'markers':>7} {'390 px':>8}")
        for rel in PAGES:
            m = measure_page(context, base, rel)
            phone_bad = m["phone"]["scrollWidth"] > m["phone"]["innerWidth"]
            total["eqs"] += len(m["eqs"])
            total["code"] += len(m["code"])
            total["markers"] += len(m["markers"])
            total["phone"] += phone_bad
            phone = f"{m['phone']['scrollWidth']}px" if phone_bad else "ok"
            print(f"{rel:34} {m['column']:>6} {len(m['eqs']):>8} {len(m['code']):>9} {len(m['markers']):>7} {phone:>8}")
            for p in problems_of(m):
                print(f"    {p}")
        context.close()
    shutil.rmtree(user_dir, ignore_errors=True)
    print(f"TOTAL: {total['eqs']} wide equations, {total['code']} wide code/output blocks, "
          f"{total['markers']} visible solution markers, {total['phone']} pages wider than {PHONE} px")
    return sum(total.values())


@pytest.mark.parametrize("width, kind", [(PHONE, "primary"), (PHONE, "secondary"), (WIDE, "secondary")])
def test_sidebar_buttons_open_their_drawers(width, kind, book_server, browser_context):
    """On a phone the navigation and the page contents, at 1280 px the page contents (the
    right-hand sidebar lives in a drawer there, to give the text its width)."""
    chapters = [p for p in PAGES if (HTML_DIR / "_sources" / p).with_suffix(".ipynb").is_file()]
    if not chapters:
        pytest.fail(NOT_BUILT, pytrace=False)
    page = browser_context.new_page()
    try:
        page.set_viewport_size({"width": width, "height": 844})
        page.goto(f"{book_server}/{chapters[0]}", wait_until="load")
        buttons = page.locator(f"button.{kind}-toggle")
        visible = [buttons.nth(i) for i in range(buttons.count()) if buttons.nth(i).is_visible()]
        assert visible, f"no visible {kind} sidebar button at {width} px"
        visible[0].click()
        page.wait_for_function(f"document.querySelector('#pst-{kind}-sidebar-modal').open", timeout=5000)
        links = page.eval_on_selector_all(f"#pst-{kind}-sidebar-modal a", "els => els.filter(e => e.offsetParent).length")
        assert links > 0, f"the {kind} drawer opened empty"
        page.keyboard.press("Escape")
        if width == WIDE:
            right = page.evaluate("document.querySelector('.bd-article').getBoundingClientRect().right")
            assert right > width - 40, f"the text column ends at {right:.0f} px: the right-hand sidebar still takes room"
    finally:
        page.close()


if __name__ == "__main__":
    sys.exit(1 if _table() else 0)
