"""Where tenants come from: a static list, a file, or a discovery URL refreshed on an interval."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from monitor.config.model import DiscoverSpec, TenantsSpec
from monitor.core.clock import Clock
from monitor.core.secrets import Scrubber, request_of, scrub
from monitor.core.tenancy import InvalidTenantId, Shard, validate_tenant_id
from monitor.probing.oauth2 import Token, TokenUnavailable

log = logging.getLogger("recmon.tenants")

MAX_DISCOVERY_BYTES = 64 * 1024 * 1024
MAX_FILE_BYTES = 64 * 1024 * 1024


class TenantSourceError(Exception):
    """The source could not produce a list this time (the last good list stays in use)."""


@dataclass(frozen=True, slots=True)
class TenantList:
    ids: tuple[str, ...]
    # (shown id, reason) for each candidate that was not accepted.
    rejected: tuple[tuple[str, str], ...] = ()
    truncated: int = 0


def accept_ids(
    candidates: Iterable[object], *, limit: int, clean: Scrubber | None = None
) -> TenantList:
    """Validate, de-duplicate and cap candidate ids, keeping their order. `clean`: scrubs the
    credentials of the request that fetched them (discovery); a candidate holding one is
    refused, and what is said of a refused one is scrubbed before it is cut short."""
    accepted: list[str] = []
    seen: set[str] = set()
    rejected: list[tuple[str, str]] = []
    truncated = 0
    check = clean is not None
    if clean is not None:
        candidates = list(candidates)
        check = clean.holds_any(c for c in candidates if isinstance(c, str))
    for candidate in candidates:
        try:
            tenant = validate_tenant_id(candidate)
            if check and clean is not None and clean.holds(tenant):
                raise InvalidTenantId(_HOLDS_CREDENTIAL)
        except InvalidTenantId as exc:
            if len(rejected) < 100:
                rejected.append(_rejected(candidate, exc, clean))
            continue
        if tenant in seen:
            continue
        if len(accepted) >= limit:
            truncated += 1
            continue
        seen.add(tenant)
        accepted.append(tenant)
    return TenantList(tuple(accepted), tuple(rejected), truncated)


# Of a refused candidate, at most this much is scrubbed: more is never shown.
_SHOWN_SCRUBBED = 4096
_HOLDS_CREDENTIAL = "a tenant id holding a credential sent to discovery"


def _rejected(candidate: object, exc: InvalidTenantId, clean: Scrubber | None) -> tuple[str, str]:
    """(shown id, reason) of a refused candidate; scrubbed whole, then cut to 80 characters."""
    if clean is None:
        return repr(candidate)[:80], str(exc)
    shown = clean(repr(candidate)[:_SHOWN_SCRUBBED])[:80]
    if isinstance(candidate, str) and str(exc) != _HOLDS_CREDENTIAL:
        try:
            validate_tenant_id(clean(candidate[:_SHOWN_SCRUBBED]))
        except InvalidTenantId as scrubbed:
            exc = scrubbed
    return shown, str(exc)


def parse_tenant_file(text: str, *, limit: int = 1_000_000) -> TenantList:
    """One id per line; blank lines and '#' comments are ignored."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return accept_ids((line for line in lines if line), limit=limit)


def parse_discovery(body: bytes, spec: DiscoverSpec, clean: Scrubber | None = None) -> TenantList:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise TenantSourceError(f"discovery response is not JSON: {str(exc)[:200]}") from None
    found = spec.items.find(document)
    if not found:
        raise TenantSourceError(f"discovery response has no tenants at {spec.items.text}")
    return accept_ids(found, limit=spec.max_tenants, clean=clean)


def report(tenants: TenantList, source: str) -> None:
    for shown, reason in tenants.rejected:
        log.warning(
            "tenant rejected, not probed",
            extra={"fields": {"source": source, "tenant": shown, "reason": reason}},
        )
    if tenants.truncated:
        log.warning(
            "tenant list capped",
            extra={
                "fields": {"source": source, "kept": len(tenants.ids), "dropped": tenants.truncated}
            },
        )


class TenantSource:
    """Produces the current tenant ids for this shard; keeps the last good list on failure."""

    def __init__(
        self,
        spec: TenantsSpec,
        *,
        shard: Shard = Shard(),
        client: httpx.AsyncClient | None = None,
        token: Callable[[], Awaitable[Token | TokenUnavailable]] | None = None,
        clock: Clock,
        base_dir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.shard = shard
        self._client = client
        # The OAuth2 token of the target whose credentials discovery uses (discover.target).
        self._token = token
        self._clock = clock
        self._base_dir = base_dir or Path.cwd()
        self._last_good: tuple[str, ...] | None = None
        self._last_refresh: float | None = None
        self.last_error: str | None = None

    @property
    def refresh_interval(self) -> float | None:
        if self.spec.discover is not None:
            return self.spec.discover.refresh
        if self.spec.file is not None:
            return 60.0
        return None

    @property
    def description(self) -> str:
        if self.spec.discover is not None:
            return "discovery"
        return "file" if self.spec.file is not None else "static"

    def seed(self, tenants: Iterable[str]) -> None:
        """Start from a list remembered from an earlier run (used when discovery is down)."""
        self._last_good = tuple(t for t in tenants if self.shard.owns(t))

    def retry_soon(self) -> None:
        """After a failed first load: the next due() is true."""
        self._last_refresh = None

    def due(self) -> bool:
        interval = self.refresh_interval
        if self._last_refresh is None:
            return True
        return interval is not None and self._clock.monotonic() - self._last_refresh >= interval

    async def refresh(self) -> tuple[str, ...]:
        """Fetch the list again. On failure, log, keep and return the last good list; raise only
        when there has never been one."""
        self._last_refresh = self._clock.monotonic()
        try:
            tenants = await self._load()
        except TenantSourceError as exc:
            self.last_error = str(exc)
            if self._last_good is None:
                raise
            log.warning(
                "tenant source failed, keeping the last good list",
                extra={
                    "fields": {
                        "source": self.description,
                        "error": str(exc),
                        "tenants": len(self._last_good),
                    }
                },
            )
            return self._last_good
        self.last_error = None
        report(tenants, self.description)
        owned = tuple(t for t in tenants.ids if self.shard.owns(t))
        if not owned and self._last_good:
            log.warning(
                "tenant source returned no tenants, keeping the last good list",
                extra={"fields": {"source": self.description, "tenants": len(self._last_good)}},
            )
            return self._last_good
        self._last_good = owned
        return owned

    @property
    def current(self) -> tuple[str, ...]:
        return self._last_good or ()

    async def _load(self) -> TenantList:
        if self.spec.static is not None:
            return accept_ids(self.spec.static, limit=len(self.spec.static))
        if self.spec.file is not None:
            return self._load_file(self._base_dir / self.spec.file)
        assert self.spec.discover is not None
        return await self._discover(self.spec.discover)

    def _load_file(self, path: Path) -> TenantList:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise TenantSourceError(f"tenant file {path} is larger than 64 MiB")
            return parse_tenant_file(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise TenantSourceError(f"cannot read tenant file {path}: {exc}") from None

    async def _discover(self, spec: DiscoverSpec) -> TenantList:
        if self._client is None:
            raise TenantSourceError("no HTTP client for tenant discovery")
        chunks: list[bytes] = []
        size = 0
        request: httpx.Request | None = None
        headers = spec.headers
        if self._token is not None:
            token = await self._token()
            if isinstance(token, TokenUnavailable):
                raise TenantSourceError(f"no OAuth2 token for discovery: {token.reason}")
            headers = {**headers, "authorization": f"Bearer {token.value}"}
        try:
            # One deadline for the whole exchange: httpx timeouts are per read.
            async with (
                asyncio.timeout(spec.timeout),
                self._client.stream("GET", spec.url, headers=headers) as response,
            ):
                request = request_of(response)
                if response.status_code != 200:
                    raise TenantSourceError(f"discovery answered status {response.status_code}")
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_DISCOVERY_BYTES:
                        raise TenantSourceError("discovery response is larger than 64 MiB")
                    chunks.append(chunk)
        except TimeoutError:
            raise TenantSourceError(f"discovery did not answer within {spec.timeout:g}s") from None
        except httpx.HTTPError as exc:
            said = scrub(str(exc), request_of(exc))
            raise TenantSourceError(
                f"discovery request failed: {type(exc).__name__}: {said}"
            ) from None
        # What discovery answers may quote what it was sent: never kept or said as it came.
        return parse_discovery(b"".join(chunks), spec, Scrubber(request))
