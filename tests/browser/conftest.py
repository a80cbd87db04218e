"""Shared fixtures of the browser tests: one headless Chromium (see ``chromium.py``) per module."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chromium import FLAGS, INSTALL_HINT, find_chromium  # noqa: E402

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.fail(f"no Chromium found: {INSTALL_HINT}", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser_context(chromium_path):
    from playwright.sync_api import sync_playwright

    user_dir = tempfile.mkdtemp(prefix="book-chromium-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_dir,
            executable_path=chromium_path,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(user_dir, ignore_errors=True)
