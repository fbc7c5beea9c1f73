"""Drive the system's headless Chromium (Debian ``chromium`` + ``chromium-driver``) through
selenium to open a report: console errors, network requests and load time.

Used by the browser test tier (``tests/browser``) and ``lens bench html``; nothing here
downloads a browser. Without Chromium, :func:`missing` says what to install.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CHROMEDRIVER", "CHROMIUM", "INSTALL", "PageLoad", "load", "missing", "open_browser"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--window-size=1400,1000",
)


def missing() -> str | None:
    """Why no browser can be driven here (None when it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} not found; install it: {INSTALL}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed; {INSTALL}"
    return None


def open_browser() -> Any:
    """A selenium Chrome driver over the system Chromium with a fresh profile (quit it when
    done; its profile folder is removed then)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="lens-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.get("about:blank")  # leave the new-tab page before any log is read
    quit_ = driver.quit

    def quit_and_clean() -> None:
        try:
            quit_()
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    setattr(driver, "quit", quit_and_clean)  # noqa: B010
    return driver


@dataclass
class PageLoad:
    """What opening one page did.

    Attributes:
        url: the page's file URL.
        seconds: wall time of ``driver.get`` until every view had been drawn.
        ready_ms: the page's own clock (``performance.now()``) when the views were drawn.
        errors: console messages of level SEVERE (script errors, blocked loads).
        requests: URLs of every request other than the page itself (``data:`` URIs, which
            hold inline images and fetch nothing, are left out).
        resources: ``performance.getEntriesByType("resource")`` names (0 expected).
    """

    url: str
    seconds: float
    ready_ms: float
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)


def _requests(driver: Any, url: str) -> list[str]:
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            req = msg["params"]["request"]["url"]
            if req != url and not req.startswith("data:"):  # inline data is not fetched
                out.append(req)
    return out


def load(driver: Any, path: str | Path, *, timeout: float = 20.0) -> PageLoad:
    """Open ``path`` and wait until the page says its views are drawn (``data-ready``)."""
    url = Path(path).resolve().as_uri()
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get_log("browser")
    start = time.perf_counter()
    driver.get(url)
    deadline = start + timeout
    while driver.execute_script("return document.body && document.body.dataset.ready") != "1":
        if time.perf_counter() > deadline:
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    ready = driver.execute_script("return window.LENS_READY_MS || -1")
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return PageLoad(url, seconds, float(ready), errors, _requests(driver, url), list(resources))
