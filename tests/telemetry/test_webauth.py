"""Basic authentication in front of what `recmon run` serves: bcrypt-checked, the probes'
endpoints left open, a good check remembered without keeping the password."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from monitor.config.webconfig import WebConfig
from monitor.telemetry.webauth import BasicAuth, CertificateReload, server_context
from tests.tlscerts import CertificateAuthority

USERS = {"prometheus": bcrypt.hashpw(b"right horse", bcrypt.gensalt(4))}


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})


def client(auth: BasicAuth) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=auth), base_url="http://recmon")


async def test_every_path_but_the_probes_wants_a_known_user_and_password() -> None:
    auth = BasicAuth(hello, USERS)
    async with client(auth) as http:
        for path in ("/", "/status", "/metrics", "/tenants/acme", "/static/status.css"):
            anonymous = await http.get(path)
            assert anonymous.status_code == 401, path
            assert anonymous.headers["www-authenticate"].startswith('Basic realm="recmon"')
            assert "hello" not in anonymous.text
        for path in ("/healthz", "/readyz"):
            assert (await http.get(path)).status_code == 200
        wrong = await http.get("/status", auth=("prometheus", "wrong horse"))
        unknown = await http.get("/status", auth=("nobody", "right horse"))
        right = await http.get("/status", auth=("prometheus", "right horse"))
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert (right.status_code, right.text) == (200, "hello /status")


async def test_malformed_credentials_are_refused_not_a_crash() -> None:
    auth = BasicAuth(hello, USERS)
    async with client(auth) as http:
        for header in (
            "Bearer abc",
            "Basic !!!",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
            "",
        ):
            response = await http.get("/", headers={"Authorization": header})
            assert response.status_code == 401, header


async def test_a_good_check_is_remembered_by_a_digest_not_the_password() -> None:
    auth = BasicAuth(hello, USERS)
    async with client(auth) as http:
        for _ in range(3):
            assert (await http.get("/", auth=("prometheus", "right horse"))).status_code == 200
        assert (await http.get("/", auth=("prometheus", "right horsE"))).status_code == 401
    [remembered] = auth._verified
    assert len(remembered) == 32 and b"right horse" not in remembered


def test_a_rotated_certificate_is_taken_and_a_broken_rotation_keeps_the_last_good(
    tmp_path: Path, ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    first = ca.issue("server", names=("127.0.0.1",))
    web = WebConfig(source="web.yml", cert_file=str(first.cert_pem), key_file=str(first.key_pem))
    context = server_context(web)
    reload = CertificateReload(web, context)
    assert reload.check() is False  # nothing changed

    ca.issue("server", names=("127.0.0.1",))  # rewrites both files
    assert reload.check() is True

    # Half a rotation: a new certificate whose key has not been written yet.
    other = ca.issue("other", names=("127.0.0.1",))
    Path(web.cert_file or "").write_bytes(other.cert_pem.read_bytes())
    with caplog.at_level(logging.INFO, logger="recmon.http"):
        assert reload.check() is False
    assert "keeping the certificate served so far" in caplog.text
    assert "BEGIN" not in caplog.text  # names files, never their content
