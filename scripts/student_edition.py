#!/usr/bin/env python
"""Write the student edition of the book's notebooks: solutions out, stubs in, outputs cleared.

Usage::

    python scripts/student_edition.py                      # every notebook listed in _toc.yml
    python scripts/student_edition.py --out DIR book/forward_process.ipynb

For each notebook it writes ``<out>/<path relative to book/>`` (default ``<out>`` is
``student_edition/`` at the repository root, which git ignores) and:

* replaces every nbgrader region ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` in a code cell
  by ``raise NotImplementedError("not implemented yet — see exercise <label>")`` at the
  indentation of the ``### BEGIN SOLUTION`` line, so the signature and docstring around it stay
  and the cell is still valid Python (the label is the one of the enclosing exercise /
  solution directive); a region in a Markdown cell becomes "*Your answer here.*";
* removes the solutions' text: the ``{solution-start}`` ... ``{solution-end}`` Markdown (and
  whole ``{solution}`` directives) are dropped, with a one-line instruction in their place; the
  ``{exercise-start}`` / ``{exercise}`` directive lines become a bold heading with the label,
  so the task reads well in plain Jupyter;
* clears every output and execution count;
* tags the cells so that the notebook executes top to bottom up to the first unsolved exercise
  under nbval 0.11 and nbclient / myst-nb: the first cell that runs a stub (usually the check
  cell after the first exercise) gets ``raises-exception``, every code cell after it gets
  ``nbval-skip`` (nbval) and ``skip-execution`` (nbclient, myst-nb). The tags do nothing in
  Jupyter itself: a student runs the cells, meets the "not implemented yet" feedback, solves the
  exercise and carries on.

Local images referenced from Markdown (``![..](path)``, ``{figure}``, ``{image}``) are copied
along; everything else a chapter needs comes from the installed ``diffusion_lib``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = ROOT / "book"

STUB = 'raise NotImplementedError("not implemented yet — see exercise {label}")'
MARKDOWN_STUB = "*Your answer here.*"
YOUR_TURN = (
    "**Your turn** (exercise `{label}`): in the next code cell, replace the "
    "`raise NotImplementedError(...)` line with your code, run it, then run the check cell below it."
)
RAISES_TAG = "raises-exception"  # nbval 0.11 and nbclient both read it
SKIP_TAGS = ("nbval-skip", "skip-execution")  # nbval 0.11; nbclient / myst-nb

BEGIN = re.compile(r"^(?P<indent>[ \t]*)###\s*BEGIN SOLUTION\s*$")
END = re.compile(r"^[ \t]*###\s*END SOLUTION\s*$")
# Opening line of a MyST directive: ```{name} argument   or   :::{name} argument
DIRECTIVE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*?)[ \t]*$")
OPTION = re.compile(r"^[ \t]*:(?P<key>[\w-]+):[ \t]*(?P<value>.*?)[ \t]*$")
STUB_MESSAGE = re.compile(r"not implemented yet — see exercise")


class StudentEditionError(Exception):
    """A notebook cannot be turned into a student edition; the message says where and why."""


@dataclass
class Report:
    """What was done to one notebook."""

    source: str
    labels: list[str] = field(default_factory=list)  # one per stubbed region, in order
    boundary: int | None = None  # index (in the student notebook) of the cell tagged raises-exception
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ code cells


def stub_solutions(source: str, label: str, where: str = "cell") -> tuple[str, int]:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region of a code cell by a
    ``raise NotImplementedError(...)`` line at the indentation of the BEGIN marker.

    Returns the new source and the number of regions replaced.
    """
    out: list[str] = []
    inside = False
    count = 0
    for lineno, line in enumerate(source.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside:
                raise StudentEditionError(f"{where}, line {lineno}: '### BEGIN SOLUTION' inside another solution region (missing '### END SOLUTION' before it)")
            inside = True
            count += 1
            out.append(begin.group("indent") + STUB.format(label=label))
        elif end:
            if not inside:
                raise StudentEditionError(f"{where}, line {lineno}: '### END SOLUTION' without a '### BEGIN SOLUTION' before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise StudentEditionError(f"{where}: '### BEGIN SOLUTION' is never closed by '### END SOLUTION'")
    new = "\n".join(out)
    if count:
        try:
            ast.parse(_without_magics(new))
        except SyntaxError as err:
            raise StudentEditionError(
                f"{where}: after replacing the solution the cell is not valid Python ({err.msg}, line "
                f"{err.lineno}). Put '### BEGIN SOLUTION' at the indentation of the code it encloses."
            ) from err
    return new, count


def _without_magics(source: str) -> str:
    """IPython magics and shell escapes become ``pass`` so that ``ast`` can parse a cell."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines)


def _is_stub_raise(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id == "NotImplementedError"
        and any(isinstance(a, ast.Constant) and isinstance(a.value, str) and STUB_MESSAGE.search(a.value) for a in node.exc.args)
    )


def _contains_stub(node: ast.AST) -> bool:
    return any(_is_stub_raise(n) for n in ast.walk(node))


def _outside_definitions(stmt: ast.stmt):
    """Nodes of a top-level statement that run when the cell runs (skip def/class/lambda bodies)."""
    todo = [stmt]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                todo.append(child)


def analyse_cell(source: str, stubbed: set[str]) -> tuple[bool, bool]:
    """For a code cell of the student edition: ``(runs_a_stub, parsed)``.

    ``stubbed`` is the set of function/class names whose body raises a stub; names defined with
    a stub in this cell are added to it. A cell runs a stub when a stub ``raise`` executes at the
    top level, or when it calls or mentions a stubbed name outside a definition (a check cell
    passes the function to its checker, which calls it).
    """
    try:
        tree = ast.parse(_without_magics(source))
    except SyntaxError:
        return True, False
    runs = False
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if _contains_stub(stmt):
                stubbed.add(stmt.name)
            continue
        for node in _outside_definitions(stmt):
            if _is_stub_raise(node) or (isinstance(node, ast.Name) and node.id in stubbed):
                runs = True
    return runs, True


# -------------------------------------------------------------------------- markdown cells


@dataclass
class _State:
    label: str | None = None
    in_solution: bool = False


def _find_close(lines: list[str], start: int, fence: str) -> int:
    """Index of the line closing the directive opened at ``start`` (or the last line)."""
    char, n = fence[0], len(fence)
    closing = re.compile(rf"^[ \t]*{re.escape(char)}{{{n},}}[ \t]*$")
    for j in range(start + 1, len(lines)):
        if closing.match(lines[j]):
            return j
    return len(lines) - 1


def _options(lines: list[str], start: int, end: int) -> tuple[dict[str, str], int]:
    """The ``:key: value`` options right after a directive's first line, and where the body starts."""
    opts: dict[str, str] = {}
    j = start + 1
    while j < end and OPTION.match(lines[j]):
        m = OPTION.match(lines[j])
        opts[m.group("key")] = m.group("value")
        j += 1
    return opts, j


def transform_markdown(source: str, state: _State) -> str:
    """Drop solution text, turn exercise directives into plain headings, update the label."""
    lines = source.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = DIRECTIVE.match(lines[i])
        if not m:
            if not state.in_solution:
                out.append(lines[i])
            i += 1
            continue
        name, arg = m.group("name"), m.group("arg")
        end = _find_close(lines, i, m.group("fence"))
        opts, body = _options(lines, i, end)
        if name in ("exercise", "exercise-start"):
            state.label = opts.get("label") or state.label
            title = f": {arg}" if arg else ""
            label = f" (`{opts['label']}`)" if "label" in opts else ""
            out.append(f"**Exercise{label}{title}**")
            out.append("")
            if name == "exercise":  # the body is the task: keep it
                out.extend(lines[body:end])
        elif name == "exercise-end":
            pass
        elif name == "solution-start":
            state.label = arg or state.label
            state.in_solution = True
            out.append(YOUR_TURN.format(label=state.label or "above"))
        elif name == "solution-end":
            state.in_solution = False
        elif name == "solution":
            state.label = arg or state.label
        elif not state.in_solution:
            out.extend(lines[i : end + 1])
        i = end + 1
    text = "\n".join(out).strip("\n")
    return _stub_markdown_regions(text)


def _stub_markdown_regions(text: str) -> str:
    out, inside = [], False
    for line in text.splitlines():
        if BEGIN.match(line):
            inside = True
            out.append(MARKDOWN_STUB)
        elif END.match(line):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


# ---------------------------------------------------------------------------------- notebook

_LOCAL_REFS = (
    re.compile(r"!\[[^\]]*\]\((?P<path>[^)\s]+)"),
    re.compile(r"^[ \t]*(?:`{3,}|:{3,})\{(?:figure|image)\}[ \t]+(?P<path>\S+)", re.M),
)


def local_references(nb: nbformat.NotebookNode) -> set[str]:
    """Relative file paths that Markdown cells display (images, figures)."""
    found = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for rx in _LOCAL_REFS:
                for m in rx.finditer(cell.source):
                    p = m.group("path")
                    if "://" not in p and not p.startswith(("#", "/", "data:")):
                        found.add(p)
    return found


def make_student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, Report]:
    """Return the student edition of ``nb`` (a new object) and a :class:`Report`."""
    student = copy.deepcopy(nb)
    report = Report(source=name)
    state = _State()
    cells = []
    for idx, cell in enumerate(student.cells):
        where = f"{name}, cell {idx}"
        if cell.cell_type == "markdown":
            cell.source = transform_markdown(cell.source, state)
            if not cell.source.strip():
                continue
        elif cell.cell_type == "code":
            label = state.label or f"in {Path(name).stem}"
            new, count = stub_solutions(cell.source, label, where)
            if count:
                if state.label is None:
                    report.warnings.append(f"{where}: solution region with no exercise or solution directive before it")
                report.labels.extend([label] * count)
                cell.source = new
            elif state.in_solution:
                report.warnings.append(f"{where}: code cell inside a solution without '### BEGIN SOLUTION' markers; kept as it is")
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        cells.append(cell)
    if state.in_solution:
        report.warnings.append(f"{name}: a {{solution-start}} is never closed by {{solution-end}}")
    student.cells = cells
    _tag_first_unsolved(student, report)
    student.metadata["diffusion_book"] = {"edition": "student", "source": name}
    nbformat.validate(student)
    return student, report


def _add_tags(cell: nbformat.NotebookNode, *tags: str) -> None:
    existing = list(cell.metadata.get("tags", []))
    cell.metadata["tags"] = existing + [t for t in tags if t not in existing]


def _tag_first_unsolved(nb: nbformat.NotebookNode, report: Report) -> None:
    """Tag the first cell that runs a stub ``raises-exception`` and skip every code cell after it."""
    stubbed: set[str] = set()
    seen_stub = False
    for idx, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if report.boundary is not None:
            _add_tags(cell, *SKIP_TAGS)
            report.skipped += 1
            continue
        has_stub = STUB_MESSAGE.search(cell.source) is not None
        seen_stub = seen_stub or has_stub
        if not seen_stub:
            continue
        runs, parsed = analyse_cell(cell.source, stubbed)
        if not parsed:
            report.warnings.append(f"cell {idx}: not valid Python; treated as the first cell that fails")
        if runs:
            report.boundary = idx
            _add_tags(cell, RAISES_TAG)


def notebooks_from_toc(root: Path = ROOT) -> list[Path]:
    """The ``.ipynb`` files listed in ``<root>/_toc.yml``, in order (Markdown pages are skipped)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    found = []
    for f in files:
        path = root / f
        path = path if path.suffix else path.with_suffix(".ipynb")
        if path.suffix == ".ipynb" and path.exists() and path not in found:
            found.append(path)
    return found


def write_student_edition(notebooks: list[Path], out: Path, book_dir: Path = BOOK_DIR, quiet: bool = False) -> list[Report]:
    """Write the student edition of each notebook under ``out`` and return the reports."""
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for path in notebooks:
        path = Path(path).resolve()
        try:
            rel = path.relative_to(book_dir.resolve())
        except ValueError:
            rel = Path(path.name)
        nb = nbformat.read(path, as_version=4)
        student, report = make_student_notebook(nb, name=str(rel))
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(student, target)
        for ref in sorted(local_references(nb)):
            src = (path.parent / ref).resolve()
            if src.is_file():
                dst = target.parent / ref
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        reports.append(report)
        if not quiet:
            labels = ", ".join(dict.fromkeys(report.labels)) or "no exercises"
            stop = (
                f"cell {report.boundary} (the first that runs an unsolved stub) is tagged raises-exception, "
                f"the {report.skipped} code cell(s) after it are skipped under nbval"
                if report.boundary is not None
                else "no cell runs a stub: the whole notebook executes"
            )
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} -> {target}: "
                  f"{len(report.labels)} solution region(s) stubbed ({labels}); {stop}")
            for w in report.warnings:
                print(f"  warning: {w}", file=sys.stderr)
    return reports


def _output_folder_problem(out: Path) -> str | None:
    """Why ``out`` cannot be the output folder (None if it can)."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder; pass a folder for the student edition"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return f"--out {out}: cannot write in {out} ({err.strerror or err}); choose a folder you can write to"
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line: user errors print one line to stderr and return 1 (argparse's own: 2); no traceback."""
    parser = argparse.ArgumentParser(description="Write the student edition of the book's notebooks.")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to convert (default: every notebook in _toc.yml)")
    parser.add_argument("--out", type=Path, default=ROOT / "student_edition", help="output folder (default: student_edition/)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or notebooks_from_toc()
    if not notebooks:
        print("error: no notebooks found (none listed in _toc.yml exists yet)", file=sys.stderr)
        return 1
    missing = [str(p) for p in notebooks if not Path(p).is_file()]
    if missing:
        print(f"error: notebook(s) not found: {', '.join(missing)}; check the path(s)", file=sys.stderr)
        return 1
    not_ipynb = [str(p) for p in notebooks if Path(p).suffix != ".ipynb"]
    if not_ipynb:
        print(f"error: not a Jupyter notebook (.ipynb): {', '.join(not_ipynb)}", file=sys.stderr)
        return 1
    problem = _output_folder_problem(args.out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        write_student_edition(notebooks, args.out)
        (args.out / "README.md").write_text(
            "# Student edition\n\nGenerated by `scripts/student_edition.py`; do not edit, regenerate it.\n"
            "Each exercise's solution is replaced by `raise NotImplementedError(...)`: write your code\n"
            "there and run the check cell after it, which explains what is still wrong.\n",
            encoding="utf-8",
        )
    except StudentEditionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: cannot write the student edition to {args.out}: {err.strerror or err}", file=sys.stderr)
        return 1
    except (ValueError, nbformat.ValidationError) as err:  # not JSON / not a valid notebook
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: a notebook could not be read ({first}); check that it is a valid .ipynb file", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
