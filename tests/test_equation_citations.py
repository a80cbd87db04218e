"""One hop from equation to code: every labelled equation is cited by the code that computes it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("equation_index", ROOT / "scripts" / "equation_index.py")
equation_index = importlib.util.module_from_spec(spec)
sys.modules["equation_index"] = equation_index
spec.loader.exec_module(equation_index)


def test_the_book_labels_its_equations() -> None:
    labels = equation_index.book_labels()
    assert len(labels) >= 60
    assert labels["eq-q-sample"] == "forward_process"
    assert labels["eq-ddpm-ddim"] == "ddpm_2d"


def test_every_citation_names_a_real_label_and_its_chapter_and_every_label_has_code_or_a_reason() -> None:
    wrong = equation_index.problems(equation_index.book_labels(), equation_index.code_citations())
    assert not wrong, "\n".join(wrong)


def test_the_checker_catches_each_kind_of_mistake() -> None:
    labels = {"eq-a": "ch1", "eq-b": "ch2", "eq-c": "ch2"}
    citations = [("eq-a", "m.f", "ch1"), ("eq-x", "m.g", "ch1"), ("eq-b", "m.h", "ch1"), ("eq-b", "m.k", None)]
    wrong = equation_index.problems(labels, citations, no_code={})
    assert "m.g cites eq-x, which no chapter labels" in wrong
    assert "m.h cites eq-b as chapter ch1, but it is in ch2" in wrong
    assert any(w.startswith("m.k cites eq-b without the chapter") for w in wrong)
    assert "eq-c (ch2) has no code citing it and no reason in NO_CODE" in wrong
    assert len(wrong) == 4
    assert equation_index.problems({"eq-c": "ch2"}, [], no_code={"eq-c": "why"}) == []
    assert equation_index.problems({}, [], no_code={"eq-z": "why"}) == ["NO_CODE lists eq-z, which no chapter labels"]


def test_citations_are_read_from_docstrings() -> None:
    cites = equation_index.code_citations()
    assert all(where.startswith("diffusion_lib") for _, where, _ in cites)
    assert len({label for label, _, _ in cites}) >= 30


def test_the_notation_page_table_is_current() -> None:
    text = equation_index.render(equation_index.book_labels(), equation_index.code_citations())
    assert equation_index.OUT.read_text(encoding="utf-8") == text, "run python scripts/equation_index.py"
    assert "_generated/equation_index.md" in (ROOT / "book" / "notation.md").read_text(encoding="utf-8")
