"""What a tenant id may be, and which replica probes which tenant."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Plain identifiers only: they are substituted into URL paths, metric labels and alert keys.
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


class InvalidTenantId(ValueError):
    pass


def validate_tenant_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidTenantId(
            f"tenant id must be a string, got {type(value).__name__} (quote it in YAML)"
        )
    if not _TENANT_ID.fullmatch(value) or ".." in value:
        shown = value if value.isprintable() and len(value) <= 80 else repr(value[:80])
        raise InvalidTenantId(
            f"invalid tenant id {shown!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, without '..'"
        )
    return value


def tenant_named(tenant: str) -> str:
    """The tenant as a page names it: "tenant acme", but "tenant-002" alone — an id that
    says "tenant" already reads "for tenant tenant-002" otherwise."""
    return tenant if "tenant" in tenant.lower() else f"tenant {tenant}"


@dataclass(frozen=True, slots=True)
class Shard:
    """Replica `index` of `count` probes the tenants whose stable hash falls in its bucket."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"invalid shard {self.index}/{self.count}: need 0 <= i < n")

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, sep, count = text.partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"invalid shard {text!r}: expected i/n, like 0/3")
        return cls(int(index), int(count))

    def owns(self, tenant: str) -> bool:
        if self.count == 1:
            return True
        digest = hashlib.blake2b(tenant.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
