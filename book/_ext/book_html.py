"""A small Sphinx extension for the book's HTML pages.

It does five things for the HTML pages, each tested by the browser tests in ``tests/browser/``:

1. **Duplicate inline scripts.** Sphinx 7.4 writes an inline (body-only) script twice when an
   extension registers it after the builder has started: once as registered (file name
   ``None``) and once more when the builder re-reads the registry before writing (file name
   ``""``), and the two do not compare equal. sphinx-thebe registers ``const THEBE_JS_URL = ...``
   that way, so every page declared the same ``const`` twice and the browser raised
   "Identifier 'THEBE_JS_URL' has already been declared". Such duplicates are dropped.
2. **Solution markers.** nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines stay in
   the notebooks (``scripts/student_edition.py`` needs them) but are removed from the code shown
   in the HTML.
3. **Wrapped code lines.** Each line of a highlighted code block becomes its own
   ``<span class="bk-line">`` carrying its indentation (``--bk-indent``), so that
   ``book/_assets/book-layout.css`` can wrap long lines with a hanging indent. The text of the
   block, and so what the copy button copies, is unchanged.
4. **Notebook downloads.** After the build, every chapter's student edition (solutions replaced
   by stubs, outputs cleared; ``scripts/student_edition.py``) is written to
   ``_exercises/<chapter>.ipynb`` and the executed notebook (with every output) is copied from
   ``_build/jupyter_execute`` to ``_executed/<chapter>.ipynb`` inside the HTML folder, so both
   downloads work offline.
5. **Links to them.** Under the title of each notebook page: download the exercises, open them
   on Binder (``binder/postBuild`` writes ``student_edition/``), download the notebook with
   outputs.

It also lets the single-page builder (the PDF) render every node the HTML builder can.
"""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from docutils import nodes

ROOT = Path(__file__).resolve().parents[2]
EXERCISES_DIR = "_exercises"
EXECUTED_DIR = "_executed"
#: where binder/postBuild writes the student edition (relative to the repository root)
BINDER_STUDENT_DIR = "student_edition"

MARKER = re.compile(r"^[ \t]*#+[ \t]*(BEGIN|END) SOLUTION\b.*$")


# ---------------------------------------------------------------------- 1. duplicate scripts
def _key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return (
        getattr(script, "filename", script) or "",
        tuple(sorted((k, str(v)) for k, v in attributes.items())),
    )


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    scripts[:] = unique


# ---------------------------------------------------------------------- 2. solution markers
def strip_markers(text: str) -> str:
    """``text`` without its solution-marker lines."""
    kept = [line for line in text.split("\n") if not MARKER.match(line)]
    return "\n".join(kept)


def _in_code_cell(node: nodes.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, nodes.container) and "cell_input" in parent.get("classes", []):
            return True
        parent = parent.parent
    return False


def hide_solution_markers(app, doctree: nodes.document) -> None:
    """Remove the marker lines from the code of notebook cells (the notebooks keep them)."""
    for block in list(doctree.findall(nodes.literal_block)):
        text = block.astext()
        if not _in_code_cell(block) or not any(MARKER.match(line) for line in text.split("\n")):
            continue
        new = nodes.literal_block(strip_markers(block.rawsource or text), strip_markers(text), **block.attributes)
        block.replace_self(new)


# ---------------------------------------------------------------------- 3. one span per line
_PRE = re.compile(r'(<div class="highlight"><pre>)(.*?)(</pre></div>)', re.S)
_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>|[^<]+")
_VOID = {"br", "img", "wbr", "hr", "input"}


def split_lines(inner: str) -> str:
    """Wrap every line of a ``<pre>``'s highlighted HTML in a ``bk-line`` span.

    Tags open across a line end (a multi-line string's ``<span class="s2">``) are closed at the
    end of the line and opened again on the next, so every line is well-formed on its own. The
    newline characters stay in the text: ``textContent`` is the same as before.
    """
    lines: list[tuple[list[str], list[str]]] = [([], [])]  # (html parts, text parts) per line
    stack: list[tuple[str, str]] = []  # open tags: (the tag as written, its name)
    for m in _TOKEN.finditer(inner):
        token, closing, name = m.group(0), m.group(1), m.group(2)
        parts, texts = lines[-1]
        if name:
            parts.append(token)
            if closing:
                if stack:
                    stack.pop()
            elif name.lower() not in _VOID and not token.endswith("/>"):
                stack.append((token, name))
            continue
        for i, piece in enumerate(token.split("\n")):
            if i:
                parts.append("".join(f"</{n}>" for _, n in reversed(stack)) + "\n")
                lines.append(([t for t, _ in stack], []))
                parts, texts = lines[-1]
            parts.append(piece)
            texts.append(piece)
    if len(lines) > 1 and not "".join(lines[-1][1]):
        lines.pop()  # after the last newline: only tags opened again and closed
    out = []
    for parts, texts in lines:
        plain = html.unescape("".join(texts))
        indent = len(plain) - len(plain.lstrip(" "))
        style = f' style="--bk-indent:{indent}"' if indent else ""
        out.append(f'<span class="bk-line"{style}>{"".join(parts)}</span>')
    return "".join(out)


def wrap_code_lines(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if not body or '<div class="highlight"><pre>' not in body:
        return
    context["body"] = _PRE.sub(lambda m: m.group(1) + split_lines(m.group(2)) + m.group(3), body)


# ---------------------------------------------------------------------- 4./5. notebook downloads
def _student_edition():
    """scripts/student_edition.py as a module (it is a script, not part of the package)."""
    if "student_edition" not in sys.modules:
        spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["student_edition"] = module
        spec.loader.exec_module(module)
    return sys.modules["student_edition"]


def _notebook_pages(app) -> dict[str, Path]:
    """docname -> source path of every page written as a notebook."""
    found = {}
    for docname in app.env.found_docs:
        path = Path(app.env.doc2path(docname))
        if path.suffix == ".ipynb":
            found[docname] = path
    return found


def _has_exercises(path: Path) -> bool:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    _, report = _student_edition().make_student_notebook(nb, name=path.name)
    return bool(report.labels)


def _binder_url(app, notebook: str) -> str | None:
    config = app.config.html_theme_options or {}
    repo = (config.get("repository_url") or "").rstrip("/")
    binder = ((config.get("launch_buttons") or {}).get("binderhub_url") or "").rstrip("/")
    if not repo.startswith("https://github.com/") or not binder:
        return None
    org_repo = repo.removeprefix("https://github.com/")
    branch = config.get("repository_branch") or "main"
    urlpath = urllib.parse.quote(f"lab/tree/{notebook}", safe="")
    return f"{binder}/v2/gh/{org_repo}/{branch}?urlpath={urlpath}"


def notebook_links_html(pathto, stem: str, exercises: bool, binder: str | None) -> str:
    """The links shown under the title of a notebook page."""
    items = []
    if exercises:
        items.append(
            f'<a class="reference download" href="{pathto(f"{EXERCISES_DIR}/{stem}.ipynb", 1)}" '
            f'download="{stem}_exercises.ipynb">Download the exercises</a> (the notebook with every '
            "solution replaced by a stub, outputs cleared)"
        )
        if binder:
            items.append(f'<a class="reference external" href="{html.escape(binder)}">Open the exercises on Binder</a>')
    items.append(
        f'<a class="reference download" href="{pathto(f"{EXECUTED_DIR}/{stem}.ipynb", 1)}" '
        f'download="{stem}.ipynb">Download this notebook with all its outputs</a>'
    )
    lis = "".join(f"<li>{item}</li>" for item in items)
    return f'<nav class="bk-notebook-links" aria-label="Notebook downloads"><ul>{lis}</ul></nav>'


def add_notebook_links(app, pagename, templatename, context, doctree) -> None:
    if app.builder.name != "html" or "body" not in context:
        return
    source = _notebook_pages(app).get(pagename)
    if source is None:
        return
    stem = source.stem
    exercises = _has_exercises(source)
    binder = _binder_url(app, f"{BINDER_STUDENT_DIR}/{stem}.ipynb") if exercises else None
    links = notebook_links_html(context["pathto"], stem, exercises, binder)
    body = context["body"]
    end = body.find("</h1>")
    context["body"] = body[: end + 5] + links + body[end + 5 :] if end >= 0 else links + body


def write_notebooks(app, exception) -> None:
    """Write the student editions and copy the executed notebooks into the HTML folder."""
    if exception is not None or app.builder.name != "html":
        return
    out = Path(app.outdir)
    executed_src = out.parent / "jupyter_execute"
    pages = _notebook_pages(app)
    student = _student_edition()
    (out / EXECUTED_DIR).mkdir(exist_ok=True)
    chapters = []
    for docname, source in sorted(pages.items()):
        executed = executed_src / f"{docname}.ipynb"
        if executed.is_file():
            shutil.copyfile(executed, out / EXECUTED_DIR / f"{source.stem}.ipynb")
        if _has_exercises(source):
            chapters.append(source)
    student.write_student_edition(chapters, out / EXERCISES_DIR, book_dir=source.parent, quiet=True)


# ---------------------------------------------------------------------- the single-page build
def share_html_node_handlers(app) -> None:
    """Give the single-page builder the HTML visitors of every extension's nodes.

    Sphinx looks the visitors up by builder name first and falls back to ``html`` only when no
    extension registered any for that name; one extension registering a ``singlehtml`` visitor
    hides all the others' (myst-nb's hidden-cell node then crashes the build). The ``html`` ones
    are added where the builder has none of its own. (``scripts/make_pdf.py`` prints this build.)
    """
    registry = app.registry.translation_handlers
    name = app.builder.name
    if name != "html" and app.builder.format == "html" and name in registry:
        for node, handlers in registry.get("html", {}).items():
            registry[name].setdefault(node, handlers)


def setup(app) -> dict[str, Any]:
    app.connect("builder-inited", share_html_node_handlers)
    # run after the extensions that add per-page scripts (default priority 500)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    app.connect("html-page-context", add_notebook_links, priority=910)
    app.connect("html-page-context", wrap_code_lines, priority=920)
    app.connect("doctree-read", hide_solution_markers)
    app.connect("build-finished", write_notebooks)
    return {"version": "2.0", "parallel_read_safe": True, "parallel_write_safe": True}
