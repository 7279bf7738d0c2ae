"""Serving under a web configuration (config.webconfig): the server's TLS context, and HTTP
basic authentication in front of an ASGI app.

Passwords are checked against bcrypt hashes (the `bcrypt` library) in a worker thread, since
a cost-10 check takes ~50-100 ms; a successful check is remembered by a SHA-256 of the user
and password (never the password), as exporter-toolkit caches it, so a Prometheus scraping
every 15 s pays for bcrypt once. An unknown user is checked against a dummy hash, so the
answer takes as long as for a known one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import bcrypt

from monitor.config.webconfig import WebConfig

log = logging.getLogger("recmon.http")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_VERIFY = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_REMEMBERED = 256


@functools.cache
def _dummy_hash() -> bytes:
    """Checked when the user is unknown: the same work as a known user's wrong password. Made
    when basic authentication is first set up, not at import: hashing it costs ~60 ms of CPU,
    which every recmon command paid on start, most of them serving no page."""
    return bcrypt.hashpw(b"recmon: no such user", bcrypt.gensalt(10))


def server_context(web: WebConfig) -> ssl.SSLContext:
    """The TLS context for the served port; ssl.SSLError or OSError naming the file read when
    a certificate, key or CA does not load."""
    assert web.cert_file is not None and web.key_file is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[web.min_version]
    if web.max_version is not None:
        context.maximum_version = _VERSIONS[web.max_version]
    try:
        context.load_cert_chain(web.cert_file, web.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(
            f"tls_server_config: cannot load cert_file {web.cert_file} with key_file "
            f"{web.key_file}: {getattr(exc, 'reason', None) or exc.strerror or exc}"
        ) from None
    context.verify_mode = _VERIFY[web.client_auth_type]
    if web.client_ca_file is not None:
        try:
            context.load_verify_locations(web.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"tls_server_config: cannot load client_ca_file {web.client_ca_file}: "
                f"{getattr(exc, 'reason', None) or exc.strerror or exc}"
            ) from None
    return context


def _stamp(web: WebConfig) -> tuple[tuple[int, int, int] | None, ...]:
    stamps: list[tuple[int, int, int] | None] = []
    for name in (web.cert_file, web.key_file, web.client_ca_file):
        try:
            info = os.stat(name) if name else None
        except OSError:
            info = None
        stamps.append(None if info is None else (info.st_ino, info.st_mtime_ns, info.st_size))
    return tuple(stamps)


class CertificateReload:
    """Serves a rotated certificate without a restart (cert-manager, a renewed Secret), as
    exporter-toolkit reads its files anew: every `every` seconds the certificate, key and
    client CA files are looked at, and when one changed and the set loads, the live context
    takes it for the next connections. A set that does not load (a half-written rotation)
    is logged and the last good one kept."""

    def __init__(self, web: WebConfig, context: ssl.SSLContext, *, every: float = 5.0) -> None:
        self.web = web
        self.context = context
        self.every = every
        self._stamp = _stamp(web)

    def check(self) -> bool:
        """Reload if a file changed; True when the new certificate was taken."""
        stamp = _stamp(self.web)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            server_context(self.web)  # the whole set loads before the live context changes
            assert self.web.cert_file is not None and self.web.key_file is not None
            self.context.load_cert_chain(self.web.cert_file, self.web.key_file)
            if self.web.client_ca_file is not None:
                self.context.load_verify_locations(self.web.client_ca_file)
        except (ValueError, ssl.SSLError, OSError) as exc:
            log.error(f"web configuration: keeping the certificate served so far: {exc}")
            return False
        log.info("web configuration: certificate files changed, serving the new certificate")
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.every)
            except TimeoutError:
                self.check()


def _fingerprint(user: str, password: bytes) -> bytes:
    return hashlib.sha256(user.encode() + b"\0" + password).digest()


class BasicAuth:
    """Requires HTTP basic authentication by one of `users` (user → bcrypt hash) for every
    path but `open_paths` (the liveness and readiness probes)."""

    def __init__(
        self,
        app: App,
        users: Mapping[str, bytes],
        *,
        open_paths: Collection[str] = ("/healthz", "/readyz"),
        realm: str = "recmon",
    ) -> None:
        self.app = app
        self.users = dict(users)
        self.open_paths = frozenset(open_paths)
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'.encode()
        self._verified: dict[bytes, None] = {}  # fingerprints of credentials checked good
        self._dummy_hash = _dummy_hash()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if await self.allowed(headers.get(b"authorization", b"")):
            await self.app(scope, receive, send)
            return
        body = b"authentication required\n"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", self.challenge),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def allowed(self, header: bytes) -> bool:
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user_bytes, colon, password = decoded.partition(b":")
        if not colon:
            return False
        user = user_bytes.decode("utf-8", "replace")
        fingerprint = _fingerprint(user, password)
        if any(hmac.compare_digest(fingerprint, known) for known in self._verified):
            return True
        hashed = self.users.get(user)
        good = await asyncio.to_thread(bcrypt.checkpw, password, hashed or self._dummy_hash)
        if good and hashed is not None:
            if len(self._verified) >= _REMEMBERED:
                self._verified.pop(next(iter(self._verified)))
            self._verified[fingerprint] = None
            return True
        return False
