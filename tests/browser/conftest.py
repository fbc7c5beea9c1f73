"""The browser tier: reports opened in the system's headless Chromium through selenium.

Skipped (with the install command) when /usr/bin/chromium, /usr/bin/chromedriver or selenium
is missing. Screenshots go to $LENS_SCREENSHOTS when set, else to a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lens.html.browser import missing, open_browser


@pytest.fixture(scope="session")
def browser():
    why = missing()
    if why:
        pytest.skip(why)
    driver = open_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("LENS_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
