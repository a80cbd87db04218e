"""Count the code lines of the diffusion core: the lines a reader reads to follow the equations.

Usage: python scripts/core_lines.py [--check]   (--check: exit 1 above CORE_LIMIT lines)

The core is the forward process with its posterior and reverse step (core/diffusion.py), the one
DDPM/DDIM sampler (core/sampling.py), the bound (core/bound.py) and the training objectives
(core/objectives.py). Counted are physical lines, without: docstrings, comments, blank lines, imports, the validation layer (a
statement that calls check.* / check_*, a raise, an `if` whose body only raises), and a function's
signature counts as one line however it is wrapped.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = [ROOT / "diffusion_lib" / "core" / f"{name}.py" for name in ("diffusion", "sampling", "bound", "objectives")]
CORE_LIMIT = 300  # the architecture issue's 'reads in one sitting'


def code_lines(path: Path) -> int:
    """The counted lines of one file (rules in the module docstring)."""
    src = Path(path).read_text(encoding="utf-8")
    tree = ast.parse(src)
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node) is not None:
            d = node.body[0]; skip.update(range(d.lineno, d.end_lineno + 1))
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip.update(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, ast.FunctionDef):  # the signature: one line
            skip.update(range(node.lineno + 1, node.body[0].lineno))
        if isinstance(node, ast.Raise) or (isinstance(node, ast.If) and all(isinstance(b, ast.Raise) for b in node.body) and not node.orelse):
            skip.update(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, (ast.Expr, ast.Assign, ast.Return)):
            seg = ast.get_source_segment(src, node)
            if "check." in seg or "check_" in seg.split("(")[0] or seg.split("=")[-1].strip().startswith(("check.", "check_")):
                if not any(k in seg for k in ("return self._", "return _", "_step(", "_loop(")):
                    skip.update(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip.update(range(node.lineno, node.end_lineno + 1))
    n = 0
    for i, line in enumerate(src.splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#") and i not in skip:
            n += 1
    return n

def main(argv: list[str]) -> int:
    total = 0
    for path in CORE:
        n = code_lines(path)
        total += n
        print(f"{n:5d}  {path.relative_to(ROOT)}")
    print(f"{total:5d}  the diffusion core (limit {CORE_LIMIT})")
    return 1 if "--check" in argv and total > CORE_LIMIT else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
