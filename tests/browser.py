"""Headless Chromium for the comparison page's tests and screenshots (Debian's chromium and
chromium-driver, driven by selenium; no browser is ever downloaded).

Without them the tests fail with a message saying what to install, unless AECOMPRESS_SKIP_BROWSER=1
says to skip them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

CHROMIUM = os.environ.get("AECOMPRESS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AECOMPRESS_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--force-device-scale-factor=1")
SKIP_VARIABLE = "AECOMPRESS_SKIP_BROWSER"


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    gone = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if gone:
        return (f"{', '.join(gone)} not found: apt-get install -y chromium chromium-driver "
                f"(or set {SKIP_VARIABLE}=1 to skip the browser tests)")
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return f"selenium is not installed: pip install selenium (or set {SKIP_VARIABLE}=1 to skip the browser tests)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900):
    """A selenium driver of a fresh headless Chromium (its own profile folder, removed after)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium manager: never look for drivers on the network
    profile = tempfile.mkdtemp(prefix="aecompress-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
