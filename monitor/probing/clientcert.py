"""Client certificates for mTLS: one SSL context per target, shared by its client's transport
(asyncio, aiohttp or httpx alike), reloaded in place when the certificate or key file changes.

Loading a new chain into the same context is what every transport's next handshake uses;
connections already open keep the certificate they were made with. The private key is read
by OpenSSL only: recmon never holds its bytes in a string it could print.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path

from monitor.config.model import Target
from monitor.core.certinfo import CertificateInfo, parse_certificate
from monitor.core.clock import Clock

log = logging.getLogger("recmon.tls")

RELOAD_CHECK_S = 5.0
Stamp = tuple[tuple[int, int, int], ...]


def base_context(target: Target) -> ssl.SSLContext:
    """The context a target's server certificate is verified with (or not, verify: false)."""
    if not target.tls.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=target.tls.ca_file)


def read_certificate(path: str) -> CertificateInfo:
    """The first certificate of a PEM file (the client's own; the rest is its chain)."""
    # Imported here, as in certinfo: only a target with a client certificate needs it.
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return parse_certificate(certificate.public_bytes(Encoding.DER))


class ClientCertificate:
    """A target's client certificate and the context that presents it."""

    def __init__(self, target: str, spec: Target) -> None:
        assert spec.tls.cert_file is not None and spec.tls.key_file is not None
        self.target = target
        self.cert_file = spec.tls.cert_file
        self.key_file = spec.tls.key_file
        self.context = base_context(spec)
        self._stamp: Stamp | None = None
        self.reloads = 0
        self.refresh()

    def _stamps(self) -> Stamp:
        rows = []
        for file in (self.cert_file, self.key_file):
            try:
                info = Path(file).stat()
            except OSError:
                rows.append((-1, -1, -1))
            else:
                rows.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(rows)

    def refresh(self) -> bool:
        """Load the files again if they changed; True when a new chain is in use. A pair that
        cannot be loaded (half-written, mismatched) leaves the last good one in use."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return False
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
            info = read_certificate(self.cert_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            if self._stamp is None:
                raise
            log.warning(
                "client certificate not reloaded: keeping the one in use",
                extra={
                    "fields": {
                        "target": self.target,
                        "cert_file": self.cert_file,
                        "error": getattr(exc, "reason", None) or type(exc).__name__,
                    }
                },
            )
            return False
        changed = self._stamp is not None
        self._stamp = stamp
        self.reloads += 1
        if changed:
            log.info(
                "client certificate reloaded",
                extra={
                    "fields": {
                        "target": self.target,
                        "cert_file": self.cert_file,
                        "serial": info.serial,
                        "not_after": info.not_after,
                    }
                },
            )
        return True

    def info(self) -> CertificateInfo | None:
        try:
            return read_certificate(self.cert_file)
        except (OSError, ValueError):
            return None


class ClientCertificates:
    """Every target's client certificate; checks the files for changes on an interval."""

    def __init__(self, targets: Mapping[str, Target], *, clock: Clock) -> None:
        self.by_target = {
            name: ClientCertificate(name, target)
            for name, target in targets.items()
            if target.tls.cert_file is not None
        }
        self._clock = clock

    def context(self, target: str) -> ssl.SSLContext | None:
        certificate = self.by_target.get(target)
        return certificate.context if certificate is not None else None

    def refresh(self) -> None:
        for certificate in self.by_target.values():
            certificate.refresh()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and self.by_target:
            await self._clock.sleep(RELOAD_CHECK_S)
            try:
                self.refresh()
            except Exception:  # a bug: the certificates in use stay in use
                log.exception("client certificate check failed")
