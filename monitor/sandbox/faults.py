"""Faults a test or a person can switch on at runtime, per tenant or for all, per check or for
all. Pure data and lookup; the app applies them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ALL = "*"


@dataclass(frozen=True, slots=True)
class Fault:
    empty: bool = False  # the check's list comes back [] with status 200
    latency_factor: float = 1.0  # 2.0 turns 60 ms into 120 ms
    extra_latency_ms: float = 0.0
    error_rate: float = 0.0  # share of requests answering 500
    status: int | None = None  # always answer this status (502: a broken proxy)
    # With `status`: the share of requests that get it (the rest are answered as usual), a
    # partial outage; 1.0 is every request.
    fail_ratio: float = 1.0
    hang: bool = False  # never answer
    drip_interval_ms: float = 0.0  # send the body a few bytes at a time, this far apart
    invalid_json: bool = False
    truncated_json: bool = False
    wrong_content_type: bool = False
    huge_body_bytes: int = 0  # a 200 JSON body this large, streamed
    redirect_loop: bool = False
    delisted: tuple[str, ...] = ()  # product ids treated as not in the catalog
    # Present but wrong (HTTP 200 with items):
    fallback: bool = False  # one popular list for every product (and tenant, with "*")
    foreign_tenant: str = ""  # answered with this tenant's items instead of its own
    drift: str = ""  # the items' shape changed: renamed_field (id -> product_id), changed_type
    frozen: bool = False  # the answer stops changing over time (sandbox --refresh)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["delisted"] = list(self.delisted)
        return {k: v for k, v in data.items() if v != getattr(HEALTHY, k) or k == "latency_factor"}


HEALTHY = Fault()
DRIFTS = ("", "renamed_field", "changed_type")
_FIELD_TYPES = {f.name: f.type for f in fields(Fault)}


class FaultError(ValueError):
    pass


def fault_from_json(data: object) -> Fault:
    """Validate a JSON object into a Fault: unknown fields and wrong types are errors."""
    if not isinstance(data, Mapping):
        raise FaultError("a fault must be a JSON object")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELD_TYPES:
            raise FaultError(
                f"unknown fault field {key!r}; known: {', '.join(sorted(_FIELD_TYPES))}"
            )
        values[key] = _coerce(key, value)
    return Fault(**values)


def _coerce(key: str, value: object) -> Any:
    kind = _FIELD_TYPES[key]
    if kind == "bool":
        if not isinstance(value, bool):
            raise FaultError(f"{key} must be true or false")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise FaultError(f"{key} must be a non-negative number")
        if key in ("error_rate", "fail_ratio") and value > 1:
            raise FaultError(f"{key} must be between 0 and 1")
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FaultError(f"{key} must be a non-negative integer")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise FaultError(f"{key} must be a string")
        if key == "drift" and value not in DRIFTS:
            raise FaultError(f"drift must be one of {', '.join(DRIFTS)}")
        return value
    if kind == "int | None":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            raise FaultError(f"{key} must be an HTTP status between 100 and 599")
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FaultError(f"{key} must be a list of strings")
    return tuple(value)


@dataclass
class FaultTable:
    """Rules keyed by (location or "*", tenant or "*", check or "*"). The most specific
    matching rule wins, whole: for the probe's location first (its X-Recmon-Location header),
    then for every location; within each, (tenant, check) > (tenant, *) > (*, check) > (*, *).
    A location's rules let one vantage point's requests fail while the others succeed."""

    rules: dict[tuple[str, str, str], Fault] = field(default_factory=dict)

    def set(self, tenant: str, check: str, fault: Fault, location: str = ALL) -> None:
        self.rules[(location, tenant, check)] = fault

    def clear(
        self, tenant: str | None = None, check: str | None = None, location: str | None = None
    ) -> None:
        if tenant is None and check is None and location is None:
            self.rules.clear()
        else:
            self.rules.pop((location or ALL, tenant or ALL, check or ALL), None)

    def lookup(self, tenant: str, check: str, location: str | None = None) -> Fault:
        if not self.rules:
            return HEALTHY
        places = (location, ALL) if location and location != ALL else (ALL,)
        for place in places:
            for key in ((tenant, check), (tenant, ALL), (ALL, check), (ALL, ALL)):
                fault = self.rules.get((place, *key))
                if fault is not None:
                    return fault
        return HEALTHY

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                **({"location": location} if location != ALL else {}),
                "tenant": tenant,
                "check": check,
                "fault": fault.to_json(),
            }
            for (location, tenant, check), fault in sorted(self.rules.items())
        ]
