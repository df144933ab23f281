"""The browser fixtures, for tests/browser and tests/vm alike: one headless
chromium per module, and where screenshots are kept."""

import os
from pathlib import Path

import pytest

from .chromium import Browser, available

__all__ = ["browser", "artifacts"]


@pytest.fixture(scope="module")
def browser():
    missing = available()
    # scripts/setup.sh installs chromium and chromium-driver; the test extra, selenium.
    assert missing is None, f"headless chromium cannot run: {missing} (run scripts/setup.sh)"
    with Browser() as b:
        yield b


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where the browser tests keep their screenshots: $OOMDRGN_ARTIFACTS/html, else
    a directory under pytest's own temporary root (pytest keeps the last runs')."""
    given = os.environ.get("OOMDRGN_ARTIFACTS")
    path = Path(given) / "html" if given else tmp_path_factory.mktemp("html-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
