"""The chapters' set-up cell (``scripts/sync_setup_cell.py``), run against a fake Colab.

The cell's source is executed here with ``diffusion_lib`` made to look missing, a fake set of
installed versions (Colab's published stack: Python 3.13, torch 2.11, ipywidgets 7.7.1, no POT)
and a fake ``subprocess.run`` that records the commands instead of running pip. The tests assert
the exact pip commands: the library with ``--no-deps``, then only what is missing or too old,
torch never (a constraint keeps the one that is there), ipywidgets 7.7 never upgraded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sync_setup_cell", ROOT / "scripts" / "sync_setup_cell.py")
sync = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync)

#: Colab's stack (2026), as distribution -> version; POT is not there
COLAB = {
    "torch": "2.11.0+cu126",
    "numpy": "2.0.2",
    "scipy": "1.16.1",
    "scikit-learn": "1.6.1",
    "matplotlib": "3.10.0",
    "pillow": "11.3.0",
    "einops": "0.8.1",
    "tqdm": "4.67.1",
    "ipywidgets": "7.7.1",
}


class FakeColab:
    """Runs the set-up cell in ``workdir`` with fake versions and a fake pip."""

    def __init__(self, monkeypatch, workdir: Path, versions: dict[str, str], lib_importable: bool = False):
        self.commands: list[list[str]] = []
        self.constraints: list[str] = []
        self.workdir = workdir
        real_find_spec = importlib.util.find_spec

        def find_spec(name, *args, **kwargs):
            if name == "diffusion_lib":
                return object() if lib_importable else None
            return real_find_spec(name, *args, **kwargs)

        def version(name):
            if name in versions:
                return versions[name]
            raise importlib.metadata.PackageNotFoundError(name)

        def run(cmd, check=False, **kwargs):
            cmd = [str(c) for c in cmd]
            self.commands.append(cmd)
            if cmd[:2] == ["git", "clone"]:
                repo = workdir / "diffusion-book"
                repo.mkdir()
                shutil.copyfile(ROOT / "pyproject.toml", repo / "pyproject.toml")
                (repo / "checkpoints").mkdir()
            if "-c" in cmd:
                self.constraints.append(Path(cmd[cmd.index("-c") + 1]).read_text())
            return subprocess.CompletedProcess(cmd, 0)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        monkeypatch.setattr(importlib.metadata, "version", version)
        monkeypatch.setattr(subprocess, "run", run)
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
        monkeypatch.chdir(workdir)
        # setenv first so that monkeypatch restores the variable's absence afterwards: the cell
        # under test sets it, and a leak would point every later notebook kernel at a temp dir.
        monkeypatch.setenv("DIFFUSION_BOOK_CHECKPOINTS", "unset-by-the-test")
        monkeypatch.delenv("DIFFUSION_BOOK_CHECKPOINTS")

    def run_cell(self):
        exec(compile(sync.SETUP_CELL, "<set-up cell>", "exec"), {"__name__": "__main__"})

    @property
    def pip_commands(self) -> list[list[str]]:
        return [c for c in self.commands if c[1:4] == ["-m", "pip", "install"]]


def _requirements(cmd: list[str]) -> list[str]:
    """The requirement arguments of a pip command (after the options)."""
    args = cmd[4:]
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "-c":
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def test_on_colab_it_installs_only_what_is_missing_and_keeps_torch(monkeypatch, tmp_path, capsys):
    colab = FakeColab(monkeypatch, tmp_path, COLAB)
    colab.run_cell()
    assert colab.commands[0][:2] == ["git", "clone"]
    assert colab.commands[0][-1] == "https://github.com/diffusion-book/diffusion-book"
    first, second = colab.pip_commands
    assert _requirements(first) == ["./diffusion-book"] and "--no-deps" in first
    assert _requirements(second) == ["POT>=0.9.1"]  # the one dependency Colab lacks
    for cmd in colab.pip_commands:
        assert not any(a.lower().startswith("torch") for a in _requirements(cmd)), cmd
        assert not any("ipywidgets" in a for a in cmd), cmd
    # the constraint that keeps Colab's torch where it is
    assert colab.constraints == ["torch==2.11.0+cu126\n"] * 2
    assert os.environ["DIFFUSION_BOOK_CHECKPOINTS"] == str(tmp_path / "diffusion-book" / "checkpoints")
    assert capsys.readouterr().out == ""  # nothing to say: torch 2.11 is in range


def test_a_torch_below_the_range_gets_one_line_and_is_not_replaced(monkeypatch, tmp_path, capsys):
    colab = FakeColab(monkeypatch, tmp_path, COLAB | {"torch": "2.3.1+cu121"})
    colab.run_cell()
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("torch 2.3.1+cu121 is older than the book supports (torch>=2.4)")
    assert colab.constraints[0] == "torch==2.3.1+cu121\n"
    assert all("torch" not in " ".join(_requirements(c)) for c in colab.pip_commands)


def test_an_old_dependency_is_upgraded_with_a_restart_hint(monkeypatch, tmp_path, capsys):
    colab = FakeColab(monkeypatch, tmp_path, COLAB | {"POT": "0.9.5", "einops": "0.6.1"})
    colab.run_cell()
    assert [_requirements(c) for c in colab.pip_commands] == [["./diffusion-book"], ["einops>=0.7"]]
    assert "restart the kernel" in capsys.readouterr().out


def test_everything_present_installs_the_library_alone(monkeypatch, tmp_path):
    colab = FakeColab(monkeypatch, tmp_path, COLAB | {"POT": "0.9.7"})
    (tmp_path / "diffusion-book").mkdir()
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "diffusion-book" / "pyproject.toml")
    colab.run_cell()
    assert not any(c[:2] == ["git", "clone"] for c in colab.commands)  # the clone is reused
    assert [_requirements(c) for c in colab.pip_commands] == [["./diffusion-book"]]


def test_without_torch_it_stops_with_one_line(monkeypatch, tmp_path):
    versions = {k: v for k, v in COLAB.items() if k != "torch"}
    colab = FakeColab(monkeypatch, tmp_path, versions)
    with pytest.raises(RuntimeError) as err:
        colab.run_cell()
    assert "torch is not installed" in str(err.value) and "\n" not in str(err.value)
    assert colab.pip_commands == []


def test_where_the_library_is_importable_it_does_nothing(monkeypatch, tmp_path):
    colab = FakeColab(monkeypatch, tmp_path, COLAB, lib_importable=True)
    colab.run_cell()
    assert colab.commands == []
    assert "DIFFUSION_BOOK_CHECKPOINTS" not in os.environ


def test_the_cell_reads_every_declared_dependency():
    """Its regular expression accepts every line of pyproject's dependency list."""
    import re
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for d in deps:
        assert re.fullmatch(r"([A-Za-z0-9._-]+)>=([0-9.]+)", d.replace(" ", "")), d


# ------------------------------------------------------------------------- the sync tool
def test_sync_rewrites_only_cell_0_and_is_idempotent(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": "a1", "metadata": {"tags": ["hide-cell"]},
             "outputs": [], "source": ["# Set-up for Colab: old\n", "pass"]},
            {"cell_type": "markdown", "id": "b2", "metadata": {}, "source": ["# Title"]},
        ],
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "ch.ipynb"
    # key order and layout as another tool might write them: they must survive
    text = json.dumps(nb, indent=1)
    path.write_text(text)
    assert sync.main(["--check", str(path)]) == 1
    assert sync.sync(path) is True
    new = path.read_text()
    got = json.loads(new)
    assert "".join(got["cells"][0]["source"]) == sync.SETUP_CELL
    assert got["cells"][1:] == nb["cells"][1:] and got["metadata"] == nb["metadata"]
    assert new.split('"source"')[0] == text.split('"source"')[0]  # bytes before cell 0's source
    assert new.endswith(text[text.index('"b2"') - 20:])  # bytes after it
    assert sync.sync(path) is False and path.read_text() == new
    assert sync.main(["--check", str(path)]) == 0


def test_sync_refuses_a_notebook_without_a_set_up_cell(tmp_path):
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Hi"]}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(SystemExit, match="not a set-up cell"):
        sync.sync(path)
