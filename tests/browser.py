"""A real headless Chromium for the status page tests (Debian's chromium + chromium-driver),
driven through selenium; screenshots go to the test artifact folder."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.binaries import DEBIAN_PACKAGES, require_binary

ROOT = Path(__file__).resolve().parent.parent
# Screenshots and other files a person looks at after a run (gitignored; CI may upload it).
ARTIFACTS = Path(os.environ.get("RECMON_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DEBIAN_PACKAGES.setdefault("chromium", "chromium")
DEBIAN_PACKAGES.setdefault("chromedriver", "chromium-driver")


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[object]:
    """A fresh browser (its own profile directory), quit afterwards. Missing chromium or
    chromedriver skip the test locally and fail it in CI (RECMON_REQUIRE_SERVERS=1)."""
    browser = require_binary("chromium")
    driver_path = require_binary("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="recmon-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            yield driver
        finally:
            driver.quit()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def emulate_screen(driver: object, width: int, height: int, *, mobile: bool = True) -> None:
    """The page's viewport exactly `width`×`height` CSS pixels, as on a phone (headless
    Chromium's window does not go below 500 px wide): DevTools' device metrics override."""
    driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
