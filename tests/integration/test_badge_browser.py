"""A badge as a browser draws it (real headless Chromium): both texts inside their halves,
the screenshot kept as a test artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.app.badge import badge_svg
from tests.browser import chromium, screenshot_path

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("label", "pct"), [("recommendations 30d", 99.953), ("search 30d", 100.0), ("x", None)]
)
def test_a_badge_renders_with_its_texts_inside_it(
    tmp_path: Path, label: str, pct: float | None
) -> None:
    page = tmp_path / "badge.html"
    page.write_text(f"<!doctype html><body style='margin:0'>{badge_svg(label, pct)}</body>")
    with chromium(400, 100) as driver:
        driver.get(page.as_uri())  # type: ignore[attr-defined]
        boxes = driver.execute_script(  # type: ignore[attr-defined]
            "const r = [...document.querySelectorAll('rect')].map(e => e.getBBox());"
            "const t = [...document.querySelectorAll('text')].map(e => e.getBBox());"
            "return r.map((b, i) => [b.x, b.x + b.width, t[i].x, t[i].x + t[i].width]);"
        )
        assert len(boxes) == 2
        for rect_start, rect_end, text_start, text_end in boxes:
            assert rect_start <= text_start and text_end <= rect_end, boxes
        driver.save_screenshot(str(screenshot_path(f"badge-{label.split()[0]}.png")))  # type: ignore[attr-defined]
