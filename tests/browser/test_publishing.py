"""Checks of the publishing set-up that need no build: offline assets, launch and Binder files."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load_vendor_script():
    spec = importlib.util.spec_from_file_location("vendor_assets", ROOT / "scripts" / "vendor_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sphinx_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_npm_dependencies_are_pinned_exactly_and_locked():
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    deps = package["dependencies"]
    assert set(deps) == {"@jupyter-widgets/html-manager", "requirejs", "mathjax"}
    for name, version in deps.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly, got {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    assert deps["mathjax"].startswith("3."), "Sphinx 7 and the shims expect MathJax 3"


def test_pages_load_scripts_from_the_vendored_folder():
    """Every local script the config names is a file the vendor step copies (or a shim)."""
    config = _sphinx_config()
    vendor = _load_vendor_script()
    static_dirs = [ROOT / d for d in config["html_static_path"]]
    assert ROOT / "book" / "_vendor" in static_dirs
    assert not any(d.name == "_static" for d in static_dirs), "a folder named _static adds every .js to every page"
    shipped = set(vendor.REQUIRED)
    shims = {p.name for p in (ROOT / "book" / "_assets").glob("*.js")}
    scripts = list(config["nb_ipywidgets_js"]) + [config["mathjax_path"]]
    scripts += [e[0] if isinstance(e, list) else e for e in config["html_js_files"]]
    for script in scripts:
        assert "://" not in script, f"{script} would be fetched from the network"
        assert script in shipped or script in shims, f"{script} is neither vendored nor a shim"
    # require.js first, then the path configuration, then the widget manager
    assert list(config["nb_ipywidgets_js"]) == [
        "require.js", "widgets-require-config.js", "jupyter-widgets/embed-amd.js"
    ]


def test_vendor_folder_is_git_ignored():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "book/_vendor/" in ignored and "node_modules/" in ignored


def test_launch_buttons_point_at_the_book_repository_on_main():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"] == {
        "url": "https://github.com/diffusion-book/diffusion-book", "branch": "main", "path_to_book": ""
    }
    buttons = config["launch_buttons"]
    assert buttons["binderhub_url"] == "https://mybinder.org"
    assert buttons["colab_url"] == "https://colab.research.google.com"
    assert buttons["thebe"] is True


def test_binder_environment_is_cpu_only_and_matches_the_book_pins():
    req = (ROOT / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in req
    binder = _pins(ROOT / "binder" / "requirements.txt")
    root = _pins(ROOT / "requirements.txt") | _pins(ROOT / "constraints.txt")
    assert binder.pop("torch") == root["torch"] + "+cpu"
    for name, version in binder.items():
        assert root.get(name) == version, f"binder pins {name}=={version}, the book {root.get(name)}"
    # everything a chapter imports at run time is there
    assert {"ipywidgets", "matplotlib", "numpy", "scipy", "scikit-learn", "ipykernel"} <= set(binder)
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert re.search(r"pip install .*-e \.", post.read_text())
