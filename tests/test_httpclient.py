"""Building a target's client: which transport, and what it tells the operator."""

from __future__ import annotations

import pytest

from monitor.config.model import Target
from monitor.probing.httpclient import build_client


@pytest.mark.parametrize("kind", ["asyncio", "aiohttp"])
async def test_proxy_settings_a_transport_ignores_are_named_never_shown(
    kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:hunter2@127.0.0.1:3128")
    target = Target(base_url="http://127.0.0.1:9")
    with caplog.at_level("WARNING", logger="recmon.http"):
        await build_client("api", target, 1.0, kind=kind).aclose()
        await build_client("api", target, 1.0, kind="httpx").aclose()  # honours it: no warning
    (warning,) = [r for r in caplog.records if "proxy" in r.getMessage()]
    assert warning.fields["variables"] == ["HTTPS_PROXY"]  # type: ignore[attr-defined]
    assert warning.fields["transport"] == kind  # type: ignore[attr-defined]
    assert "hunter2" not in str(warning.__dict__)
