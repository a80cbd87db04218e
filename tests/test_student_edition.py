"""scripts/student_edition.py: solutions become stubs, and the student notebook runs (under nbval
and nbclient) up to the first unsolved exercise, where the checker explains what to do.

The end-to-end tests use a small synthetic chapter written here; the book's own notebooks get the
static checks always and are executed only with DIFFUSION_BOOK_RUN_STUDENT_EDITION=1 (a full chapter
takes up to two minutes, the budget of the whole test suite).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
se = importlib.util.module_from_spec(_spec)
sys.modules["student_edition"] = se
_spec.loader.exec_module(se)

MD, CODE = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

SETUP = '''# Set-up for Colab or a bare Jupyter: install the book's library if it is missing.
import importlib.util, subprocess, sys
if importlib.util.find_spec("diffusion_lib") is None:
    raise RuntimeError("diffusion_lib is installed in the test environment")'''

ALPHA_BAR_SOLUTION = '''def alpha_bar_from_beta(beta):
    """Running product of 1 - beta."""
    ### BEGIN SOLUTION
    alphas = 1 - beta
    return torch.cumprod(alphas, dim=0)
    ### END SOLUTION'''

Q_SAMPLE_SOLUTION = '''def q_sample(x0, alpha_bar_t, eps):
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
    if x0.shape != eps.shape:
        raise ValueError("x0 and eps must have the same shape")
    ### BEGIN SOLUTION
    signal = alpha_bar_t.sqrt() * x0
    return signal + (1 - alpha_bar_t).sqrt() * eps
    ### END SOLUTION'''


def synthetic_chapter() -> nbformat.NotebookNode:
    """A miniature chapter in the book's format: two exercises, then a cell that must never run
    in the student edition."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    setup = CODE(SETUP)
    setup.metadata["tags"] = ["hide-cell"]
    computed = CODE("import torch\nfrom diffusion_lib import set_seed\nset_seed(0)\nbeta = torch.linspace(0.1, 0.2, 5)\nassert beta.shape == (5,)\nbeta.sum()")
    computed.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "tensor(0.7500)"}, execution_count=2)]
    computed.execution_count = 2
    nb.cells = [
        setup,
        MD("# A miniature chapter\n\n![a figure](figs/tiny.png)"),
        computed,
        MD("## Exercises\n\n```{exercise-start} The running product\n:label: ex-mini-alpha-bar\n```\n"
           "Write `alpha_bar_from_beta`.\n```{exercise-end}\n```"),
        MD("```{solution-start} ex-mini-alpha-bar\n:class: dropdown\n```\nThe key is SECRET-HINT-1: multiply."),
        CODE(ALPHA_BAR_SOLUTION),
        MD("Solution prose SECRET-HINT-2.\n```{solution-end}\n```\nText after the solution stays."),
        CODE("from diffusion_lib.exercises.forward_process import check_alpha_bar\ncheck_alpha_bar(alpha_bar_from_beta)"),
        MD(":::{exercise-start} Sample x_t\n:label: ex-mini-q-sample\n:::\nWrite `q_sample`.\n:::{exercise-end}\n:::"),
        MD("```{solution-start} ex-mini-q-sample\n:class: dropdown\n```"),
        CODE(Q_SAMPLE_SOLUTION),
        MD("```{solution-end}\n```"),
        CODE("from diffusion_lib.exercises.forward_process import check_q_sample\ncheck_q_sample(q_sample)"),
        CODE("assert alpha_bar_from_beta(beta).shape == (5,)\nprint('the rest of the chapter')"),
    ]
    return nb


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    """The synthetic chapter (teacher) and its student edition, written by the command line."""
    tmp = tmp_path_factory.mktemp("student-edition")
    (tmp / "book" / "figs").mkdir(parents=True)
    (tmp / "book" / "figs" / "tiny.png").write_bytes(b"\x89PNG not really")
    teacher = tmp / "book" / "mini.ipynb"
    nbformat.write(synthetic_chapter(), teacher)
    out = tmp / "out"
    assert se.main(["--out", str(out), str(teacher)]) == 0
    return teacher, out / "mini.ipynb"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_stub_keeps_signature_docstring_and_indentation():
    src = "def f(x):\n    '''Doc.'''\n    y = 1\n    ### BEGIN SOLUTION\n    y = y + x\n    ### END SOLUTION\n    return y\n\n\nclass A:\n    def g(self):\n        if True:\n            ### BEGIN SOLUTION\n            return 2\n            ### END SOLUTION"
    new, n = se.stub_solutions(src, "ex-lbl")
    assert n == 2 and "y = y + x" not in new and "return 2" not in new
    assert new.count('raise NotImplementedError("not implemented yet — see exercise ex-lbl")') == 2
    assert "    raise NotImplementedError" in new and "            raise NotImplementedError" in new
    namespace: dict = {}
    exec(compile(new, "<stub>", "exec"), namespace)
    assert namespace["f"].__doc__ == "Doc."
    with pytest.raises(NotImplementedError, match="see exercise ex-lbl"):
        namespace["f"](1)
    with pytest.raises(NotImplementedError, match="see exercise ex-lbl"):
        namespace["A"]().g()


@pytest.mark.parametrize(
    "src, message",
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "without a '### BEGIN SOLUTION'"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another solution region"),
        ("def f():\n### BEGIN SOLUTION\n    return 1\n### END SOLUTION\n", "not valid Python"),
    ],
)
def test_malformed_regions_are_explained(src, message):
    with pytest.raises(se.StudentEditionError, match=message):
        se.stub_solutions(src, "ex-x", "nb.ipynb, cell 3")


def test_cell_analysis_finds_the_first_cell_that_runs_a_stub():
    stub = 'raise NotImplementedError("not implemented yet — see exercise ex-a")'
    stubbed: set[str] = set()
    assert se.analyse_cell(f"def f(x):\n    {stub}", stubbed) == (False, True) and stubbed == {"f"}
    assert se.analyse_cell("%matplotlib inline\ng = lambda: f(1)\ndef h():\n    return f(2)", stubbed) == (False, True)
    assert se.analyse_cell("check(f)", stubbed) == (True, True)
    assert se.analyse_cell(f"x = 1\n{stub}", set()) == (True, True)
    assert se.analyse_cell("def f(:", set()) == (True, False)


def test_no_solution_remains_and_stubs_carry_the_labels(edition):
    teacher_path, student_path = edition
    student = nbformat.read(student_path, as_version=4)
    nbformat.validate(student)
    text = "\n".join(c.source for c in student.cells)
    for secret in ("cumprod", "signal = ", "SECRET-HINT-1", "SECRET-HINT-2", "BEGIN SOLUTION", "END SOLUTION",
                   "solution-start", "solution-end", "exercise-start", "exercise-end"):
        assert secret not in text, secret
    code = code_cells(student)
    stubs = [c.source for c in code if "NotImplementedError" in c.source]
    assert len(stubs) == 2
    assert stubs[0] == 'def alpha_bar_from_beta(beta):\n    """Running product of 1 - beta."""\n    raise NotImplementedError("not implemented yet — see exercise ex-mini-alpha-bar")'
    assert stubs[1].endswith('        raise ValueError("x0 and eps must have the same shape")\n    raise NotImplementedError("not implemented yet — see exercise ex-mini-q-sample")')
    for src in stubs:
        ast.parse(src)
    assert "**Exercise (`ex-mini-alpha-bar`): The running product**" in text
    assert "**Exercise (`ex-mini-q-sample`): Sample x_t**" in text
    assert "Text after the solution stays." in text
    assert text.count("**Your turn** (exercise `ex-mini-alpha-bar`)") == 1
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert student.metadata["diffusion_book"]["edition"] == "student"
    assert (student_path.parent / "figs" / "tiny.png").is_file()
    assert (student_path.parent / "README.md").is_file()
    # the teacher's notebook is untouched
    assert "### BEGIN SOLUTION" in teacher_path.read_text()


def test_tags_stop_at_the_first_check_cell(edition):
    _, student_path = edition
    code = code_cells(nbformat.read(student_path, as_version=4))
    tags = [c.metadata.get("tags", []) for c in code]
    boundary = next(i for i, c in enumerate(code) if "check_alpha_bar(alpha_bar_from_beta)" in c.source)
    assert tags[0] == ["hide-cell"]
    assert all("raises-exception" not in t and "nbval-skip" not in t for t in tags[:boundary])
    assert tags[boundary] == ["raises-exception"]
    assert all(t == ["nbval-skip", "skip-execution"] for t in tags[boundary + 1 :])
    assert len(tags) - boundary - 1 == 3


def test_student_edition_runs_under_nbval_and_shows_the_feedback(edition, tmp_path):
    """One pytest process runs the teacher notebook (the solutions pass their checkers) and the
    student edition (it passes up to the first exercise; the cells after it are skipped)."""
    teacher, student = edition
    env = dict(os.environ, PYTHONHASHSEED="0", MPLBACKEND="Agg")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval-lax", "-rs",
         str(teacher), str(student), "--rootdir", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # teacher: its 7 code cells pass; student: set-up, computation, stub, raising check pass + 3 skipped
    assert "11 passed, 3 skipped" in run.stdout, run.stdout[-2000:]


def test_student_edition_under_nbclient_stops_with_the_not_implemented_feedback(edition):
    from nbclient import NotebookClient

    _, student_path = edition
    nb = nbformat.read(student_path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(student_path.parent)}}).execute()
    code = code_cells(nb)
    errors = [(i, o) for i, c in enumerate(code) for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1
    i, err = errors[0]
    assert "check_alpha_bar" in code[i].source
    assert err.ename == "ExerciseFeedback"
    assert err.evalue.startswith("Exercise ex-mini-alpha-bar is not implemented yet: replace the `raise NotImplementedError` line")
    assert all(c.execution_count is None for c in code[i + 1 :])  # skipped


def test_notebooks_from_toc_lists_existing_notebooks_in_order(tmp_path):
    (tmp_path / "book").mkdir()
    for name in ("b", "a"):
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / "book" / f"{name}.ipynb")
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: X\n    chapters:\n"
        "      - file: book/b\n      - file: book/missing\n      - file: book/a.ipynb\n"
    )
    assert se.notebooks_from_toc(tmp_path) == [tmp_path / "book" / "b.ipynb", tmp_path / "book" / "a.ipynb"]


# ------------------------------------------------------------------- the book's own notebooks

BOOK_NOTEBOOKS = [p for p in se.notebooks_from_toc(ROOT) if "### BEGIN SOLUTION" in p.read_text(encoding="utf-8")]


@pytest.mark.skipif(not BOOK_NOTEBOOKS, reason="no notebook of the book has exercises yet")
@pytest.mark.parametrize("path", BOOK_NOTEBOOKS, ids=lambda p: p.name)
def test_book_notebook_student_edition(path, tmp_path):
    out = tmp_path / "student_edition"
    (report,) = se.write_student_edition([path], out, quiet=True)
    student_path = out / path.relative_to(ROOT / "book")
    student = nbformat.read(student_path, as_version=4)
    nbformat.validate(student)
    assert report.labels and all(not label.startswith("in ") for label in report.labels), report.warnings
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "solution-start" not in text
    for label in set(report.labels):
        assert f'raise NotImplementedError("not implemented yet — see exercise {label}")' in text
    for c in student.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
            if "NotImplementedError" in c.source:
                ast.parse(se._without_magics(c.source))
    assert report.boundary is not None, "no cell runs the first stub: is the check cell missing?"
    # the checkers the notebook imports exist (an ImportError in the raises-exception cell would pass nbval)
    for c in student.cells:
        if c.cell_type == "code":
            for node in ast.walk(ast.parse(se._without_magics(c.source))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("diffusion_lib.exercises"):
                    module = importlib.import_module(node.module)
                    assert all(hasattr(module, a.name) for a in node.names), (node.module, [a.name for a in node.names])
    if os.environ.get("DIFFUSION_BOOK_RUN_STUDENT_EDITION") == "1":
        # the whole chapter runs up to its first exercise (30-120 s), which must fail with the feedback
        from nbclient import NotebookClient

        NotebookClient(student, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(student_path.parent)}}).execute()
        errors = [o for c in student.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert len(errors) == 1 and errors[0].ename == "ExerciseFeedback", errors
        assert f"Exercise {report.labels[0]} is not implemented yet" in errors[0].evalue


def test_command_line_errors_are_one_line_without_traceback(tmp_path, capsys):
    teacher = tmp_path / "t.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), teacher)
    (tmp_path / "afile").write_text("x")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    cases = [
        ([str(tmp_path / "missing.ipynb")], "not found"),
        (["--out", str(tmp_path / "afile"), str(teacher)], "is a file, not a folder"),
        (["--out", str(tmp_path / "afile" / "sub"), str(teacher)], "cannot write in"),
        (["--out", str(tmp_path / "o"), str(tmp_path / "afile")], "not a Jupyter notebook"),
        (["--out", str(tmp_path / "o2"), str(broken)], "could not be read"),
    ]
    for argv, message in cases:
        assert se.main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
