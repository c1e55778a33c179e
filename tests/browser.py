"""Where the browser tests find Chromium.

``$CHROMIUM`` when set (CI sets it, so there a missing browser fails the tests instead of skipping
them), else the first of ``chromium``, ``chromium-browser``, ``google-chrome`` on PATH. Without
either the browser tests skip (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import shutil

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The browser to drive, or None when there is none (and $CHROMIUM is unset)."""
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            pytest.fail(f"CHROMIUM={wanted} is not an executable browser: install it or unset CHROMIUM")
        return found
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


#: Marks a test that needs the browser; it skips only when none is installed and none was asked for.
requires_chromium = pytest.mark.skipif(
    not os.environ.get("CHROMIUM") and not any(shutil.which(name) for name in CANDIDATES),
    reason="needs Chromium (apt-get install chromium, or set CHROMIUM=/path/to/chrome)",
)
