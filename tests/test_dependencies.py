"""Every third-party import of the library and of the chapters is declared in pyproject.toml.

The imports are read from the code itself (the AST of every ``diffusion_lib/**/*.py`` and of every
code cell of ``book/*.ipynb``), so a new ``import`` without a declared dependency fails here, not
on a reader's Colab. Imports guarded by ``try: ... except ImportError`` are optional by
construction and need no declaration. The declared lower bounds are the versions that the
oldest-versions environment (``scripts/oldest_env.py``, run by ``scripts/test.sh``) installs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: import name -> distribution name, where the two differ
IMPORT_TO_DIST = {
    "ot": "POT",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "yaml": "PyYAML",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
}
#: declared distributions that no module imports, with the reason they are needed
RUNTIME_ONLY = {
    "ipywidgets": "tqdm.auto draws its notebook progress bars with ipywidgets",
}
#: the package itself
OWN = {"diffusion_lib"}


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(req: str) -> tuple[str, str | None]:
    """``"numpy>=1.24"`` -> ``("numpy", "1.24")``; the lower bound, or None without one."""
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*(?:;.*)?", req)
    if not m:
        raise ValueError(f"cannot parse the requirement {req!r}")
    lower = re.search(r">=\s*([0-9][^,\s]*)", m.group(2))
    return m.group(1), lower.group(1) if lower else None


def declared() -> dict[str, str | None]:
    """Normalised distribution name -> declared lower bound."""
    return {normalize(n): lo for n, lo in map(split_requirement, PYPROJECT["project"]["dependencies"])}


def strip_magics(source: str) -> str | None:
    """A code cell without its IPython magics and shell escapes; None for a cell magic cell."""
    if source.lstrip().startswith("%%"):
        return None
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _guarded(handlers: list[ast.ExceptHandler]) -> bool:
    for h in handlers:
        names = []
        if h.type is None:
            return True
        for node in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]):
            if isinstance(node, ast.Name):
                names.append(node.id)
        if {"ImportError", "ModuleNotFoundError", "Exception"} & set(names):
            return True
    return False


def imports_of(source: str) -> tuple[set[str], set[str]]:
    """Top-level module names imported by ``source``: (required, optional).

    Optional means every import of that name sits in a ``try`` block that catches ImportError.
    Relative imports are the package's own and are skipped.
    """
    tree = ast.parse(source)
    required: set[str] = set()
    optional: set[str] = set()

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Try):
            inner = guarded or _guarded(node.handlers)
            for child in node.body:
                visit(child, inner)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, guarded)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            (optional if guarded else required).add(name.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return required, optional - required


def third_party(names: set[str]) -> set[str]:
    return {n for n in names if n not in sys.stdlib_module_names and n not in OWN and n != "__future__"}


def code_sources() -> dict[str, str]:
    """``"path[:cell N]"`` -> Python source, for the library and every chapter code cell."""
    sources = {}
    for path in sorted((ROOT / "diffusion_lib").rglob("*.py")):
        sources[path.relative_to(ROOT).as_posix()] = path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            src = strip_magics("".join(cell["source"]))
            if src is not None:
                sources[f"{path.relative_to(ROOT).as_posix()}:cell {i}"] = src
    return sources


def undeclared(sources: dict[str, str], declared_names: set[str]) -> dict[str, list[str]]:
    """Distribution -> places that import it without it being declared."""
    missing: dict[str, list[str]] = {}
    for where, src in sources.items():
        required, _ = imports_of(src)
        for mod in sorted(third_party(required)):
            dist = normalize(IMPORT_TO_DIST.get(mod, mod))
            if dist not in declared_names:
                missing.setdefault(f"{IMPORT_TO_DIST.get(mod, mod)} (import {mod})", []).append(where)
    return missing


# ------------------------------------------------------------------------------------- tests
def test_every_third_party_import_is_declared():
    missing = undeclared(code_sources(), set(declared()))
    assert not missing, "imported but not declared in pyproject.toml [project] dependencies:\n" + "\n".join(
        f"  {dist}: {', '.join(places[:4])}{' ...' if len(places) > 4 else ''}" for dist, places in missing.items()
    )


def test_every_declared_dependency_is_used():
    used = set()
    for src in code_sources().values():
        required, optional = imports_of(src)
        used |= {normalize(IMPORT_TO_DIST.get(m, m)) for m in third_party(required | optional)}
    stale = set(declared()) - used - {normalize(n) for n in RUNTIME_ONLY}
    assert not stale, f"declared but never imported (remove, or say why in RUNTIME_ONLY): {sorted(stale)}"


def test_the_checker_catches_an_undeclared_import():
    """The derivation itself: a new import fails, optional and stdlib ones do not."""
    sources = {
        "lib.py": "import os\nimport numpy as np\nfrom ot.lp import emd\nfrom . import sibling\n",
        "book/x.ipynb:cell 3": strip_magics("%matplotlib inline\n!pip install foo\nimport sklearn.datasets\n"),
        "guarded.py": "try:\n    from myst_nb import glue\nexcept ImportError:\n    glue = None\n",
        "nested.py": "def f():\n    import einops\n    return einops\n",
    }
    missing = undeclared(sources, {"numpy"})
    assert set(missing) == {"POT (import ot)", "scikit-learn (import sklearn)", "einops (import einops)"}
    assert missing["POT (import ot)"] == ["lib.py"]
    assert undeclared(sources, {"numpy", "pot", "scikit-learn", "einops"}) == {}
    assert strip_magics("%%bash\necho hi\n") is None
    assert imports_of("try:\n    import a\nexcept ValueError:\n    pass\n") == ({"a"}, set())
    assert imports_of("try:\n    import a\nexcept (OSError, ImportError):\n    pass\n") == (set(), {"a"})


def test_requirement_parsing():
    assert split_requirement("numpy>=1.24") == ("numpy", "1.24")
    assert split_requirement("POT >= 0.9.1, <2") == ("POT", "0.9.1")
    assert split_requirement("tqdm") == ("tqdm", None)
    assert normalize("scikit_learn") == normalize("Scikit.Learn") == "scikit-learn"


def test_every_dependency_states_its_lower_bound():
    no_bound = [name for name, lo in declared().items() if lo is None]
    assert not no_bound, f"give each dependency a tested lower bound (name>=X.Y): {no_bound}"


def test_requires_python_is_what_the_pins_install():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert sys.version_info >= (3, 11)


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==")
            pins[normalize(name)] = version.strip()
    return pins


def test_the_book_pins_lie_in_the_declared_ranges():
    pins = _pins(ROOT / "requirements.txt") | _pins(ROOT / "constraints.txt")
    for name, lower in declared().items():
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert _version_tuple(pins[name]) >= _version_tuple(lower), (name, pins[name], lower)


def test_this_environment_satisfies_the_declared_ranges():
    """Run in the book environment and in the oldest-versions one: both lie in the ranges."""
    for name, lower in declared().items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{name} is declared but not installed in {sys.prefix}")
        assert _version_tuple(have) >= _version_tuple(lower), f"{name} {have} is below the declared {lower}"


#: torch APIs newer than the declared lower bound (2.4) that this code could plausibly reach
#: for; the version each appeared in. None may appear in the library or the chapters.
TORCH_NEWER_THAN_LOWER_BOUND = {
    "torch.nn.attention.flex_attention": "2.5",
    "torch.serialization.safe_globals": "2.5",
    "torch.accelerator": "2.6",
    "torch.compiler.set_stance": "2.6",
    "torch.nn.utils.get_total_norm": "2.6",
    "torch.nn.utils.clip_grads_with_norm_": "2.6",
    "torch.serialization.get_unsafe_globals_in_checkpoint": "2.6",
    "torch.float8_e8m0fnu": "2.7",
    "torch.float4_e2m1fn_x2": "2.8",
    "torch.nn.functional.grouped_mm": "2.8",
    "torch.Tensor.module_load": "2.5",
    "torch.optim.Muon": "2.9",
}


def test_no_torch_api_newer_than_the_lower_bound():
    lower = declared()["torch"]
    assert lower == "2.4", "update TORCH_NEWER_THAN_LOWER_BOUND with the new lower bound"
    text = "\n".join(code_sources().values())
    found = {}
    for api, since in TORCH_NEWER_THAN_LOWER_BOUND.items():
        parts = api.split(".")
        # `torch.x` itself, or for deeper names the last part alone (`from torch.nn.utils import x`)
        pattern = re.escape(api) if len(parts) == 2 else rf"\b{re.escape(parts[-1])}\b"
        if re.search(pattern, text):
            found[api] = since
    assert not found, f"these torch APIs are newer than the supported torch>={lower}: {found}"


def test_oldest_environment_pins_are_the_declared_lower_bounds():
    spec = importlib.util.spec_from_file_location("oldest_env", ROOT / "scripts" / "oldest_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pins = dict(split_requirement(p.replace("==", ">=")) for p in module.library_pins())
    pins = {normalize(k): v for k, v in pins.items()}
    for name, lower in declared().items():
        if name == "torch":
            assert pins[name] == module.TORCH_VERSION  # the only torch the machines can install
        else:
            assert pins[name] == lower, f"the oldest environment installs {name}=={pins[name]}, declared >={lower}"


def declared_extras() -> dict[str, str | None]:
    """Normalised distribution name -> lower bound, over every ``[project.optional-dependencies]`` group."""
    groups = PYPROJECT["project"].get("optional-dependencies", {})
    return {normalize(n): lo for reqs in groups.values() for n, lo in map(split_requirement, reqs)}


def _local_modules() -> set[str]:
    """Module names that are files of this repository (test helpers, scripts), not distributions."""
    names = {"tests"}
    for folder in ("tests", "tests/browser", "tests/property", "scripts", "benchmarks"):
        names |= {p.stem for p in (ROOT / folder).glob("*.py")}
    return names


def test_every_import_of_the_tests_scripts_and_benchmarks_is_declared():
    known = set(declared()) | set(declared_extras())
    local = _local_modules()
    missing: dict[str, list[str]] = {}
    for folder in ("tests", "scripts", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            required, optional = imports_of(path.read_text(encoding="utf-8"))
            for mod in sorted(third_party(required | optional) - local):
                dist = normalize(IMPORT_TO_DIST.get(mod, mod))
                if dist not in known:
                    missing.setdefault(dist, []).append(path.relative_to(ROOT).as_posix())
    assert not missing, f"imported but declared nowhere in pyproject.toml: {missing}"


def test_every_extra_states_its_lower_bound_and_is_pinned():
    pins = _pins(ROOT / "requirements.txt") | _pins(ROOT / "constraints.txt")
    for name, lower in declared_extras().items():
        assert lower is not None, f"{name}: give the optional dependency a lower bound (>=)"
        assert name in pins, f"{name} is an optional dependency but neither requirements.txt nor constraints.txt pins it"
        assert _version_tuple(pins[name]) >= _version_tuple(lower), (name, pins[name], lower)
