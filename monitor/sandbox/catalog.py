"""Tenants and their products: deterministic, cheap, cached responses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache


def tenant_ids(count: int) -> tuple[str, ...]:
    return tuple(f"tenant-{i:03d}" for i in range(1, count + 1))


@dataclass
class Catalog:
    tenants: tuple[str, ...]
    products_per_tenant: int = 20
    _known: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self._known = frozenset(self.tenants)

    def has(self, tenant: str) -> bool:
        return tenant in self._known

    def products(self, tenant: str) -> tuple[str, ...]:
        return _products(tenant, self.products_per_tenant)

    def search(
        self, tenant: str, query: str, limit: int, delisted: tuple[str, ...] = ()
    ) -> list[dict[str, object]]:
        products = [p for p in self.products(tenant) if p not in delisted]
        start = sum(query.encode()) % max(1, len(products)) if products else 0
        chosen = (products[start:] + products[:start])[:limit]
        return [
            {"id": p, "title": f"{query} {p}", "score": round(1 - i / 20, 3)}
            for i, p in enumerate(chosen)
        ]

    def recommendations(
        self,
        tenant: str,
        product: str,
        limit: int,
        delisted: tuple[str, ...] = (),
        shift: int = 0,
    ) -> list[dict[str, object]]:
        """`shift`: how often the model refreshed (the list moves on by one each time)."""
        products = self.products(tenant)
        if product not in products or product in delisted:
            # Realistic: an unknown or delisted product gets no recommendations, status 200.
            return []
        others = [p for p in products if p != product and p not in delisted]
        start = (products.index(product) + shift) % max(1, len(others))
        chosen = (others[start:] + others[:start])[:limit]
        return [{"id": p, "score": round(0.9 - i / 20, 3)} for i, p in enumerate(chosen)]

    def popular(self, limit: int) -> list[dict[str, object]]:
        """What a fallback answers for every product of every tenant: one popular list."""
        return [{"id": f"popular-{i:02d}", "score": 0.5} for i in range(1, limit + 1)]

    @property
    def tenant_list_body(self) -> bytes:
        return _tenant_list(self.tenants)


@lru_cache(maxsize=65536)
def _products(tenant: str, count: int) -> tuple[str, ...]:
    return tuple(f"{tenant}-p{i:02d}" for i in range(1, count + 1))


@lru_cache(maxsize=4)
def _tenant_list(tenants: tuple[str, ...]) -> bytes:
    return json.dumps({"tenants": [{"id": t} for t in tenants]}).encode()
