"""A small Sphinx extension for the book's HTML pages.

Sphinx 7.4 writes an inline (body-only) script twice when an extension registers it after the
builder has started: once as registered (file name ``None``) and once more when the builder
re-reads the registry before writing (file name ``""``), and the two do not compare equal.
sphinx-thebe registers ``const THEBE_JS_URL = ...`` that way, so every page declared the same
``const`` twice and the browser raised "Identifier 'THEBE_JS_URL' has already been declared".
This extension drops such duplicates from each page's script list.
"""

from __future__ import annotations

from typing import Any


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


def setup(app) -> dict[str, Any]:
    # run after the extensions that add per-page scripts (default priority 500)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
