"""Static checks of the chapter notebooks: the conventions of CONTRIBUTING.md, read from the files.

These run in a second and catch what executing the notebooks cannot: committed outputs, a chapter
missing from the table of contents, a set-up cell that drifted from the canonical one (scripts/sync_setup_cell.py).
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOC_FILES = re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text(encoding="utf-8"))
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
#: Reference pages written as notebooks: not chapters, so no summary or exercises.
REFERENCE_PAGES = {"interactive"}


def _canonical_setup_cell() -> str:
    """The one set-up cell, written in scripts/sync_setup_cell.py (which also puts it in place)."""
    spec = importlib.util.spec_from_file_location("sync_setup_cell", ROOT / "scripts" / "sync_setup_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SETUP_CELL


def test_there_are_chapters_and_every_one_is_in_the_toc():
    assert len(NOTEBOOKS) >= 10
    missing = [nb.stem for nb in NOTEBOOKS if f"book/{nb.stem}" not in TOC_FILES]
    assert not missing, f"notebooks not listed in _toc.yml: {missing}"
    for entry in TOC_FILES:
        assert (ROOT / f"{entry}.ipynb").exists() or (ROOT / f"{entry}.md").exists(), entry


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_conventions(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    with_outputs = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not with_outputs, f"code cells {with_outputs} carry outputs: clear them before committing"
    first = nb["cells"][0]
    assert first["cell_type"] == "code" and "hide-cell" in first["metadata"].get("tags", [])
    assert "".join(first["source"]) == _canonical_setup_cell(), (
        "cell 0 must be the canonical set-up cell: run `python scripts/sync_setup_cell.py`"
    )
    source = "\n".join("".join(c["source"]) for c in code)
    assert "sys.path" not in source.replace("".join(first["source"]), "")
    assert "set_seed(" in source or "manual_seed(" in source, "seed the chapter"
    if path.stem in REFERENCE_PAGES:
        return
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.search(r"^#+ Summary", markdown, re.M), "every chapter ends with a Summary"
    assert "{exercise-start}" in markdown, "every chapter has exercises (CONTRIBUTING.md format)"
