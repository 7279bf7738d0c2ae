"""Building a target's client: which transport, and what it tells the operator."""

from __future__ import annotations

import pytest

from monitor.config.model import Target
from monitor.probing.httpclient import build_client
from monitor.probing.transport.pool import AsyncioTransport


@pytest.mark.parametrize("kind", ["asyncio", "aiohttp", "httpx"])
async def test_proxy_variables_every_transport_honours_are_named_never_shown(
    kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:hunter2@127.0.0.1:3128")
    target = Target(base_url="http://127.0.0.1:9")
    with caplog.at_level("INFO", logger="recmon.http"):
        await build_client("api", target, 1.0, kind=kind).aclose()
    (line,) = [r for r in caplog.records if "proxy" in r.getMessage()]
    assert line.levelname == "INFO"
    assert line.fields["variables"] == ["HTTPS_PROXY"]  # type: ignore[attr-defined]
    assert line.fields["transport"] == kind  # type: ignore[attr-defined]
    assert "hunter2" not in str(line.__dict__)


async def test_a_targets_proxy_is_named_by_host_and_port_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = Target(base_url="http://127.0.0.1:9", proxy="http://user:hunter2@127.0.0.1:3128")
    with caplog.at_level("INFO", logger="recmon.http"):
        await build_client("api", target, 1.0, kind="asyncio").aclose()
    (line,) = [r for r in caplog.records if "proxy" in r.getMessage()]
    assert line.fields["proxy"] == "127.0.0.1:3128"  # type: ignore[attr-defined]
    assert "hunter2" not in str(line.__dict__)


@pytest.mark.parametrize(
    ("url", "no_proxy", "expected"),
    [
        ("http://api.test/x", "", "proxy.test:3128"),
        ("https://api.test/x", "", "secure.test:3129"),
        ("http://api.test/x", "api.test", None),
        ("http://eu.api.test/x", ".api.test", None),
        ("http://api.test/x", "other.test", "proxy.test:3128"),
        ("http://api.test/x", "*", None),
    ],
)
def test_the_environment_picks_a_proxy_per_url_and_no_proxy_bypasses_it(
    url: str, no_proxy: str, expected: str | None
) -> None:
    environment = {"http": "http://proxy.test:3128", "https": "http://secure.test:3129"}
    if no_proxy:
        environment["no"] = no_proxy
    transport = AsyncioTransport(environment=environment)
    scheme, host = url.split("://")[0], url.split("/")[2]
    proxy = transport._proxy_for(scheme, host)
    assert (proxy.name if proxy else None) == expected


def test_a_targets_proxy_wins_over_the_environment() -> None:
    transport = AsyncioTransport(
        proxy="http://a:b@mine.test:8080", environment={"http": "http://env.test:1", "no": "*"}
    )
    proxy = transport._proxy_for("http", "api.test")
    assert proxy is not None and proxy.name == "mine.test:8080"
    assert proxy.authorization == b"Basic YTpi"  # a:b
