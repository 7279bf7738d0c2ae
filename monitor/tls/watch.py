"""Runs the TLS prober over every configured host on its interval and hands the results to
metrics and to `emit` (the alert hub, given by the assembler)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

import httpx

from monitor.config.model import Target, TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.clock import Clock
from monitor.probing.clientcert import read_certificate
from monitor.telemetry.metrics import Metrics
from monitor.tls.prober import TlsResult, probe_host, verifying_context

log = logging.getLogger("recmon.tls")

# One host's results of a round (host:port, a result per address), to the alert rules.
TlsSink = Callable[[str, Sequence[TlsResult]], None]
# A target's client certificate (None: unreadable right now), to the alert rules.
ClientCertificateSink = Callable[[str, CertificateInfo | None], None]


def tls_hosts(spec: TlsSpec, targets: Mapping[str, Target]) -> dict[tuple[str, int], str | None]:
    """tls.hosts, plus the host of every verified https target when include_targets is set;
    each with the CA file its certificates are judged against. A target's own
    `tls.ca_file` (a private CA) is what its clients trust; one with `verify: false` asked
    for no verification, so it is not watched."""
    hosts: dict[tuple[str, int], str | None] = {}
    for entry in spec.hosts:
        host, _, port = entry.rpartition(":")
        hosts[(host, int(port))] = spec.ca_file
    if spec.include_targets:
        for target in targets.values():
            url = httpx.URL(target.base_url)
            if url.scheme == "https" and url.host and target.tls.verify:
                hosts.setdefault((url.host, url.port or 443), target.tls.ca_file or spec.ca_file)
    return hosts


class TlsWatch:
    def __init__(
        self,
        spec: TlsSpec,
        targets: Mapping[str, Target],
        *,
        clock: Clock,
        metrics: Metrics,
        emit: TlsSink,
        emit_client: ClientCertificateSink | None = None,
    ) -> None:
        self.spec = spec
        trust_files = tls_hosts(spec, targets)
        contexts = {ca_file: verifying_context(ca_file) for ca_file in set(trust_files.values())}
        # (host, port) → the trust its certificates are judged against; the watched hosts.
        self.trust = {host: contexts[ca_file] for host, ca_file in trust_files.items()}
        self.clock = clock
        self.metrics = metrics
        self.emit = emit
        self.emit_client = emit_client
        # recmon's own certificates (mTLS): their expiry is watched like the servers'.
        self.client_certificates = {
            name: target.tls.cert_file
            for name, target in targets.items()
            if target.tls.cert_file is not None
        }
        self._addresses: dict[str, set[str]] = {}
        self._latest: dict[str, tuple[TlsResult, ...]] = {}

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return list(self.trust)

    def latest(self) -> dict[str, tuple[TlsResult, ...]]:
        """host:port → every address's result in the last round (the status page's table)."""
        return dict(self._latest)

    @property
    def watching(self) -> bool:
        return bool(self.trust or self.client_certificates)

    def client_round(self) -> None:
        for target, cert_file in self.client_certificates.items():
            try:
                cert: CertificateInfo | None = read_certificate(cert_file)
            except (OSError, ValueError) as exc:
                cert = None
                log.warning(
                    "client certificate unreadable",
                    extra={"fields": {"target": target, "cert_file": cert_file, "error": str(exc)}},
                )
            if cert is not None:
                self.metrics.record_client_certificate(target, cert)
            if self.emit_client is not None:
                self.emit_client(target, cert)

    async def round(self) -> list[TlsResult]:
        """Probe every address of every host once; read the client certificates; record;
        detect."""
        self.client_round()
        batches = await asyncio.gather(
            *(
                probe_host(
                    host,
                    port,
                    addresses=self.spec.addresses.get(f"{host}:{port}"),
                    deadline_s=self.spec.timeout,
                    clock=self.clock,
                    trust=trust,
                )
                for (host, port), trust in self.trust.items()
            )
        )
        everything: list[TlsResult] = []
        for (host, port), results in zip(self.trust, batches, strict=True):
            hostport = f"{host}:{port}"
            if not any(r.reason == "dns_error" for r in results):
                # A backend that left the host's address list takes its series with it.
                current = {r.address for r in results}
                for gone in self._addresses.get(hostport, set()) - current:
                    self.metrics.forget_tls_address(hostport, gone)
                self._addresses[hostport] = current
            for r in results:
                if r.address:
                    self.metrics.record_tls(hostport, r.address, r.certificate, r.ok, r.chain)
                if not r.ok:
                    log.warning(
                        f"certificate check failed: {r.message}",
                        extra={
                            "fields": {"host": hostport, "address": r.address, "reason": r.reason}
                        },
                    )
            self.emit(hostport, results)
            self._latest[hostport] = tuple(results)
            everything += results
        return everything

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and self.watching:
            try:
                await self.round()
            except Exception:
                self.metrics.internal_errors.labels("tls").inc()
                log.exception("certificate round failed")
            await self.clock.sleep(self.spec.interval)
