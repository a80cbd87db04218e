"""Which Chromium the browser tests (and scripts/make_pdf.py) drive, and how it is started.

The first that exists of: ``$CHROMIUM``; the system's ``/usr/bin/chromium``, ``chromium``,
``chromium-browser``, ``google-chrome`` (on PATH); Playwright's own Chromium (installed with
``python -m playwright install chromium``). ``scripts/setup_env.sh`` looks for the same list
before any long step.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")

#: Launch flags that work headless as root in a container.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

INSTALL_HINT = (
    "install one with `apt-get install -y chromium` (Debian/Ubuntu, as root) or "
    "`python -m playwright install chromium`, or set CHROMIUM to its path"
)


def _playwright_chromium() -> str | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as pw:
            path = pw.chromium.executable_path
    except Exception:  # no driver, or no browser downloaded
        return None
    return path if path and Path(path).is_file() else None


def find_chromium() -> str | None:
    """The path of the Chromium to use, or None when there is none."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).is_file() or shutil.which(env) else None
    for name in CANDIDATES:
        path = name if os.path.isabs(name) else shutil.which(name)
        if path and Path(path).is_file():
            return path
    return _playwright_chromium()


if __name__ == "__main__":  # used by scripts/setup_env.sh: print the path or exit 1
    found = find_chromium()
    if found is None:
        raise SystemExit(1)
    print(found)
