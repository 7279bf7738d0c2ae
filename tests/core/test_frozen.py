"""builder(cls): the same frozen object its constructor makes, for every class built with it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from types import MappingProxyType

import pytest

from monitor.core.frozen import builder
from monitor.core.results import Outcome, ProbeResult
from monitor.probing.http import Attempt
from monitor.probing.transport.framing import Head


def sample(cls: type) -> tuple[object, ...]:
    """A value per field, each different, of the field's kind."""
    values: dict[type, object] = {
        ProbeResult: (
            "acme", "search", Outcome.EMPTY, 0.012, 1.7e9, 200, 0, "0 items", "", 2,
            Outcome.TIMEOUT, MappingProxyType({"product": "p1"}), False, "tenant", "api",
            "127.0.0.1:80", True, "has_ids", ("p1", "p2"), "abc123",
        ),
        Attempt: (
            Outcome.WRONG_CONTENT, 0.5, 200, 3, "why", "expired", {"a": "1"},
            "10.0.0.1:443", True, "cond", ("x",), True,
        ),
        Head: (404, b"Not Found", ((b"content-length", b"0"),), False),
    }  # fmt: skip
    return values[cls]  # type: ignore[return-value]


@pytest.mark.parametrize("cls", [ProbeResult, Attempt, Head])
def test_a_build_is_the_object_the_constructor_makes_and_stays_frozen(cls: type) -> None:
    args = sample(cls)
    assert len(args) == len(fields(cls))
    built, made = builder(cls)(*args), cls(*args)
    assert type(built) is cls
    assert built == made and repr(built) == repr(made)
    assert [getattr(built, f.name) for f in fields(cls)] == list(args)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, fields(cls)[0].name, None)
    assert not hasattr(built, "__dict__")


def test_a_build_takes_every_field() -> None:
    with pytest.raises(TypeError):
        builder(Head)(200, b"OK", ())


@dataclass(frozen=True)
class NoSlots:
    a: int


@dataclass(slots=True)
class Mutable:
    a: int


@dataclass(frozen=True, slots=True)
class Checked:
    a: int

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("negative")


@dataclass(frozen=True, slots=True)
class Base:
    a: int


@dataclass(frozen=True, slots=True)
class Derived(Base):
    b: int


@pytest.mark.parametrize("cls", [NoSlots, Mutable, Checked, Derived, int])
def test_only_frozen_slots_dataclasses_without_post_init_or_base_are_built(cls: type) -> None:
    with pytest.raises(TypeError):
        builder(cls)
