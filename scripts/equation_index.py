"""The index from the book's labelled equations to the code that computes them.

Every function of ``diffusion_lib`` that implements a labelled equation cites it in its
docstring as ``Implements :eq:`eq-label` (chapter ``name``).``; the API page turns the role into
a link to the equation. This script reads both sides:

* the labels, from the chapters (``$$ ... $$ (eq-label)`` and ``:label: eq-label``);
* the citations, from the docstrings of every module, class, function and method;

and writes ``book/_generated/equation_index.md``, the table that the notation page includes:
for each equation, the function(s) that compute it, or the reason it has no code of its own
(:data:`NO_CODE`). ``tests/test_equation_citations.py`` fails when a citation names a label that
does not exist or the wrong chapter, when a labelled equation has neither code nor a reason,
and when the table is stale.

Usage: ``python scripts/equation_index.py`` (write) or ``--check`` (exit 1 if stale).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "_generated" / "equation_index.md"
LABEL_RE = re.compile(r"\$\$\s*\((eq-[a-z0-9-]+)\)|:label:\s*(eq-[a-z0-9-]+)")
CITE_RE = re.compile(r":eq:`(eq-[a-z0-9-]+)`(?:\s*\(chapter\s*``([a-z0-9_]+)``\))?")

# Labelled equations that are steps of a derivation or definitions the code never evaluates on
# its own; each says why, so a missing citation is a decision, not an oversight.
NO_CODE: dict[str, str] = {
    "eq-forward-joint": "the chain is a product of step kernels; the code samples it one step at a time (`q_step_sample`)",
    "eq-sum-gaussians": "a lemma in the derivation of the marginal of x_t given x_0, which `q_mean_variance` computes",
    "eq-signal-share": "a one-line ratio the chapter computes itself for the digits' principal directions",
    "eq-sched-rho": "a one-line ratio the chapter computes and plots itself",
    "eq-score-dsm": "an identity between two losses, checked numerically in the chapter",
    "eq-score-mixture": "the chapter writes it out (`exact_score_and_mean`) as the independent reference for the network",
    "eq-unet-emb-dot": "a property of the embedding, checked numerically in the chapter",
    "eq-vae-gap": "an identity (the gap is a KL), checked numerically in the chapter and in tests/test_vae.py",
    "eq-vdm-posterior-precision": "an identity between the posterior's precision and the two variances, checked in the chapter",
    "eq-ddpm-weights": "the chapter evaluates it for both reverse variances; `kl_weights` covers the case sigma_t^2 = tilde beta_t",
}


def book_labels() -> dict[str, str]:
    """``{label: chapter}`` for every labelled equation of the book, in reading order."""
    labels: dict[str, str] = {}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            if cell["cell_type"] != "markdown":
                continue
            for m in LABEL_RE.finditer("".join(cell["source"])):
                labels.setdefault(m.group(1) or m.group(2), path.stem)
    for path in sorted((ROOT / "book").glob("*.md")):
        for m in LABEL_RE.finditer(path.read_text(encoding="utf-8")):
            labels.setdefault(m.group(1) or m.group(2), path.stem)
    return labels


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def code_citations() -> list[tuple[str, str, str | None]]:
    """``(label, dotted name of the cited object, chapter named in the citation)`` for every citation."""
    found: list[tuple[str, str, str | None]] = []
    for path in sorted((ROOT / "diffusion_lib").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = _module_name(path)

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}.{child.name}"
                    doc = ast.get_docstring(child) or ""
                    for m in CITE_RE.finditer(doc):
                        found.append((m.group(1), name, m.group(2)))
                    visit(child, name)

        for m in CITE_RE.finditer(ast.get_docstring(tree) or ""):
            found.append((m.group(1), module, m.group(2)))
        visit(tree, module)
    return found


def problems(labels: dict[str, str], citations: list[tuple[str, str, str | None]],
             no_code: dict[str, str] | None = None) -> list[str]:
    """Everything that is wrong between the labels, the citations and ``no_code`` (default :data:`NO_CODE`)."""
    no_code = NO_CODE if no_code is None else no_code
    out = []
    cited = set()
    for label, where, chapter in citations:
        cited.add(label)
        if label not in labels:
            out.append(f"{where} cites {label}, which no chapter labels")
        elif chapter is None:
            out.append(f"{where} cites {label} without the chapter: write (chapter ``{labels[label]}``)")
        elif chapter != labels[label]:
            out.append(f"{where} cites {label} as chapter {chapter}, but it is in {labels[label]}")
    for label, chapter in labels.items():
        if label not in cited and label not in no_code:
            out.append(f"{label} ({chapter}) has no code citing it and no reason in NO_CODE")
        if label in cited and label in no_code:
            out.append(f"{label} is cited by code but also listed in NO_CODE: remove it there")
    for label in no_code:
        if label not in labels:
            out.append(f"NO_CODE lists {label}, which no chapter labels")
    return out


def render(labels: dict[str, str], citations: list[tuple[str, str, str | None]]) -> str:
    """The Markdown table the notation page includes."""
    by_label: dict[str, list[str]] = {}
    for label, where, _ in citations:
        by_label.setdefault(label, [])
        if where not in by_label[label]:
            by_label[label].append(where)
    lines = [
        "<!-- generated by scripts/equation_index.py from the chapters and the docstrings: do not edit -->",
        "",
        "| Equation | Chapter | Computed by |",
        "|---|---|---|",
    ]
    for label, chapter in labels.items():
        if label in by_label:
            code = ", ".join(f"`{w}`" for w in sorted(by_label[label]))
        else:
            code = f"no code of its own: {NO_CODE.get(label, '?')}"
        lines.append(f"| {{eq}}`{label}` | {{doc}}`{chapter}` | {code} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale or a citation is wrong")
    args = parser.parse_args(argv)
    labels, citations = book_labels(), code_citations()
    wrong = problems(labels, citations)
    text = render(labels, citations)
    if args.check:
        stale = not OUT.is_file() or OUT.read_text(encoding="utf-8") != text
        for line in wrong:
            print(f"equation_index: {line}")
        if stale:
            print("equation_index: book/_generated/equation_index.md is stale: run python scripts/equation_index.py")
        return 1 if (wrong or stale) else 0
    OUT.write_text(text, encoding="utf-8")
    for line in wrong:
        print(f"equation_index: {line}")
    print(f"equation_index: {len(labels)} labelled equations, {len({c[0] for c in citations})} cited by code; wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
