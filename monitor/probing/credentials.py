"""Per-tenant credentials from mounted secrets, re-read when they change.

A directory with one file per tenant (named by its id, as a Kubernetes Secret mounts: the
files are symlinks through `..data`, swapped at once on an update) or one YAML/JSON file
mapping tenant ids to credentials. Values are secrets: handed to the redactor the moment they
are read, never logged, exported or shown; only counts and tenant ids are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from monitor.config.model import CredentialsSpec
from monitor.config.secretfiles import read_secret_file
from monitor.core.clock import Clock
from monitor.core.tenancy import InvalidTenantId, validate_tenant_id

log = logging.getLogger("recmon.credentials")

MAX_FILE_BYTES = 16 * 1024 * 1024
# What a file's identity and content change show in: a rotation replaces the file (a new
# inode through the ..data symlink) or rewrites it (mtime, size).
Signature = tuple[tuple[str, int, int, int], ...]
EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Loaded:
    """One reading of the source: tenant → credential, and what could not be used."""

    values: Mapping[str, str]
    problems: tuple[str, ...] = ()


def signature(spec: CredentialsSpec) -> Signature:
    """Changes when any credential may have changed; reading it costs a stat per file."""
    if spec.file is not None:
        return _stat_row(Path(spec.file), "")
    assert spec.dir is not None
    rows: list[tuple[str, int, int, int]] = []
    try:
        with os.scandir(spec.dir) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith("."))
    except OSError:
        return (("", -1, -1, -1),)
    for name in names:
        rows += _stat_row(Path(spec.dir) / name, name)
    return tuple(rows)


def _stat_row(path: Path, name: str) -> Signature:
    try:
        info = path.stat()  # follows the ..data symlinks
    except OSError:
        return ((name, -1, -1, -1),)
    return ((name, info.st_ino, info.st_mtime_ns, info.st_size),)


def read_directory(path: Path) -> Loaded:
    """One file per tenant id; dotfiles (Kubernetes' ..data, ..2026_...) are not tenants."""
    values: dict[str, str] = {}
    problems: list[str] = []
    try:
        with os.scandir(path) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith("."))
    except OSError as exc:
        return Loaded(EMPTY, (f"cannot read directory {path}: {exc.strerror}",))
    for name in names:
        try:
            tenant = validate_tenant_id(name)
        except InvalidTenantId:
            problems.append(f"{name!r} is not a tenant id; ignored")
            continue
        file = path / name
        if file.is_dir():
            continue
        try:
            value = read_secret_file(file)
        except OSError as exc:
            problems.append(f"cannot read the credential of {tenant}: {_why(exc)}")
            continue
        except ValueError as exc:  # larger than 64 KiB, or not UTF-8
            problems.append(f"cannot use the credential of {tenant}: {exc}; ignored")
            continue
        if value:
            values[tenant] = value
    return Loaded(MappingProxyType(values), tuple(problems))


def parse_mapping(text: str, source: str) -> Loaded:
    """A YAML (or JSON) mapping: tenant id → credential string."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        # The parser's message may quote the document: say only where.
        return Loaded(EMPTY, (f"{source} is not valid YAML or JSON{where}",))
    if document is None:
        document = {}
    if not isinstance(document, dict):
        return Loaded(EMPTY, (f"{source} must map tenant ids to credentials",))
    values: dict[str, str] = {}
    problems: list[str] = []
    for key, value in document.items():
        try:
            tenant = validate_tenant_id(str(key))
        except InvalidTenantId:
            problems.append(f"{str(key)[:80]!r} is not a tenant id; ignored")
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = json.dumps(value)
        if not isinstance(value, str):
            problems.append(f"the credential of {tenant} is not a string; ignored")
            continue
        if value.strip():
            values[tenant] = value.strip()
    return Loaded(MappingProxyType(values), tuple(problems))


def read_source(spec: CredentialsSpec) -> Loaded:
    if spec.dir is not None:
        return read_directory(Path(spec.dir))
    assert spec.file is not None
    path = Path(spec.file)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return Loaded(EMPTY, (f"{path} is larger than 16 MiB",))
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Loaded(EMPTY, (f"cannot read {path}: {_why(exc)}",))
    return parse_mapping(text, str(path))


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else type(exc).__name__


class TenantCredentials:
    """The current credential of every tenant; re-reads its source when it changes."""

    def __init__(
        self,
        spec: CredentialsSpec,
        *,
        clock: Clock,
        on_secrets: Callable[[Iterable[str]], None],
    ) -> None:
        self.spec = spec
        self.variable = spec.variable
        self._clock = clock
        self._on_secrets = on_secrets
        self._signature: Signature | None = None
        self._values: Mapping[str, str] = EMPTY
        self.reloads = 0

    def get(self, tenant: str) -> str | None:
        return self._values.get(tenant)

    def __len__(self) -> int:
        return len(self._values)

    def refresh(self) -> bool:
        """Re-read the source if it changed since the last reading; True when it was read."""
        current = signature(self.spec)
        if current == self._signature:
            return False
        loaded = read_source(self.spec)
        # Known as secrets before anything could print them.
        self._on_secrets(loaded.values.values())
        before = self._values
        self._values = loaded.values
        self._signature = current
        self.reloads += 1
        changed = sorted(t for t in loaded.values if before.get(t) != loaded.values[t])
        removed = sorted(t for t in before if t not in loaded.values)
        log.info(
            "tenant credentials read",
            extra={
                "fields": {
                    "source": self.spec.dir or self.spec.file,
                    "tenants": len(loaded.values),
                    "changed": len(changed) if before else 0,
                    "removed": removed[:20],
                }
            },
        )
        for problem in loaded.problems[:20]:
            log.warning("tenant credential not usable", extra={"fields": {"problem": problem}})
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._clock.sleep(self.spec.refresh)
            try:
                self.refresh()
            except Exception:  # a bug: keep the credentials we have, try again
                log.exception("reading tenant credentials failed")
