"""The browser harness: where the browser tests find Chromium, and a small DevTools-protocol client.

``$CHROMIUM`` when set (CI sets it, so there a missing browser fails the tests instead of skipping
them), else the first of ``chromium``, ``chromium-browser``, ``google-chrome`` on PATH. Without
either the browser tests skip (``apt-get install chromium``).

``DevTools`` drives one headless tab over the Chrome DevTools protocol (websockets): navigate,
evaluate JavaScript, wait for a condition, click, type, take screenshots and receive downloads.
Enough for kedro-viz (tests/test_viz.py) and the segment explorer (tests/explorer/test_browser.py)
without a browser-automation dependency.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
WIDTH, HEIGHT = 1600, 1000


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


def chromium_flags(profile: Path, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """Headless Chromium that talks to nothing but the pages it is sent to."""
    return [
        str(find_chromium()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ]


class DevTools:
    """Just enough of the Chrome DevTools protocol to drive one headless tab."""

    def __init__(self, profile: Path, width: int = WIDTH, height: int = HEIGHT) -> None:
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [
                *chromium_flags(profile, width, height),
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and self.process.poll() is None, "Chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        self.ws = connect(
            next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"], max_size=None
        )
        self._id = 0
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=120))
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]

    def js(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := self.js(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.25)
        return value

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        """The page's visible text."""
        return str(self.js("document.body ? document.body.innerText : ''") or "")

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Wait until the visible text holds every needle; returns that text."""
        checks = " && ".join(f"document.body.innerText.includes({json.dumps(n)})" for n in needles)
        self.wait_for(f"!!document.body && {checks}", timeout)
        return self.text()

    def click_button(self, label: str, timeout: float = 30) -> None:
        """Click the (first visible) button or link whose text is exactly ``label``."""
        script = (
            f"(() => {{ const label = {json.dumps(label)};"
            " const els = [...document.querySelectorAll('button, a')]"
            ".filter(e => e.innerText.trim() === label && e.offsetParent !== null);"
            " if (!els.length) return false; els[0].scrollIntoView({block: 'center'}); els[0].click();"
            " return true; })()"
        )
        self.wait_for(script, timeout)

    def type_into(self, label: str, text: str, timeout: float = 30) -> None:
        """Focus the input labelled ``label``, replace its text by ``text`` and press Enter.

        Streamlit may still re-mount an input just after its page finished (the typed value is then
        lost): the value is checked a moment later and typed again if it did not stay.
        """
        find = f"[...document.querySelectorAll('input, textarea')].find(i => i.getAttribute('aria-label') === {json.dumps(label)})"
        for _ in range(5):
            self.wait_for(
                f"(() => {{ const input = {find}; if (!input) return false; input.focus(); input.select(); return true; }})()",
                timeout,
            )
            self.call("Input.insertText", text=text)
            for kind in ("keyDown", "keyUp"):
                self.call(
                    "Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13
                )
            time.sleep(1.0)
            if self.js(
                f"(() => {{ const input = {find}; return !!input && input.value === {json.dumps(text)}; }})()"
            ):
                return
        raise AssertionError(f"could not type into the input labelled {label!r}")

    def allow_downloads(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(folder))

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def wait_for_file(folder: Path, pattern: str, timeout: float = 60) -> Path:
    """The first complete file matching ``pattern`` in ``folder`` (Chromium writes .crdownload first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.2)
    raise AssertionError(
        f"no {pattern} downloaded to {folder} within {timeout:.0f} s: {list(folder.iterdir())}"
    )
