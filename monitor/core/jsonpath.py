"""A small JSONPath subset for response expectations: $, .name, ['name'], [0], [-1], [*].

A full JSONPath engine is far more than probes need and slower on the hot path; this subset
compiles once at configuration time and walks the decoded body without allocation-heavy tricks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
      | \[\s*(?P<index>-?\d+)\s*\]
      | \[\s*(?P<star>\*)\s*\]
      | \.(?P<dotstar>\*)
      | \[\s*(?P<quote>['"])(?P<qname>(?:(?!(?P=quote)).)*)(?P=quote)\s*\]
    """,
    re.VERBOSE,
)

_WILDCARD = object()
Step = str | int | object


class _Missing:
    """What a path designates where the document has nothing (a key absent, an index out of
    range, a list where an object was expected): not null, which is a value."""

    def __repr__(self) -> str:
        return "absent"


MISSING: Any = _Missing()
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


class JsonPathError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]
    # No [*] step: the path designates one place, walked in a loop (`_walk`), not through
    # _find's nested generators (~1 us less per path a probe reads).
    _single: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_single", not any(step is _WILDCARD for step in self.steps))

    @property
    def has_wildcard(self) -> bool:
        return not self._single

    def find(self, document: Any) -> list[Any]:
        """Every value the path selects (empty when nothing matches)."""
        return list(_find(document, self.steps))

    def locate(self, document: Any) -> Iterator[tuple[str, Any]]:
        """Every place the path designates, as (location, value): "$.items[3].id". Where the
        document lacks a step the value is MISSING, so a renamed field is seen on each item
        of a [*] path (find() would only select fewer values)."""
        split = _split(self.steps)
        if split is None:
            return _locate(document, self.steps, "$")
        return _locate_items(document, self.steps, split)

    def first(self, document: Any) -> Any | None:
        if self._single:
            found = _walk(document, self.steps)
            return None if found is MISSING else found
        return next(_find(document, self.steps), None)

    def count_items(self, document: Any) -> int | None:
        """Items the path designates: the length of a selected list, or the number of matches
        for a wildcard path. None when the path does not exist in the document (wrong shape)."""
        items = self.items(document)
        return None if items is None else len(items)

    def items(self, document: Any) -> list[Any] | None:
        """The items count_items counts: the selected list, or every match of a wildcard
        path; None when the path does not exist in the document (wrong shape)."""
        if not self._single:
            return self.find(document)
        value = _walk(document, self.steps)
        if isinstance(value, list):
            return value
        # null reads as "no items"; an object, a scalar or nothing is the wrong shape.
        return [] if value is None else None


def compile_path(text: str) -> JsonPath:
    if not isinstance(text, str) or not text.startswith("$"):
        raise JsonPathError(f"invalid JSON path {text!r}: it must start with '$'")
    steps: list[Step] = []
    pos = 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise JsonPathError(
                f"invalid JSON path {text!r} at position {pos}: "
                "supported are .name, ['name'], [0], [-1] and [*]"
            )
        if match.group("name") is not None:
            steps.append(match.group("name"))
        elif match.group("qname") is not None:
            steps.append(match.group("qname"))
        elif match.group("index") is not None:
            steps.append(int(match.group("index")))
        else:
            steps.append(_WILDCARD)
        pos = match.end()
    return JsonPath(text, tuple(steps))


def _find(value: Any, steps: tuple[Step, ...]) -> Iterator[Any]:
    if not steps:
        yield value
        return
    step, rest = steps[0], steps[1:]
    if step is _WILDCARD:
        if isinstance(value, list):
            children: list[Any] = value
        elif isinstance(value, dict):
            children = list(value.values())
        else:
            return
        for child in children:
            yield from _find(child, rest)
    elif isinstance(step, int) and not isinstance(step, bool):
        if isinstance(value, list) and -len(value) <= step < len(value):
            yield from _find(value[step], rest)
    elif isinstance(step, str) and isinstance(value, dict) and step in value:
        yield from _find(value[step], rest)


def _walk(value: Any, steps: tuple[Step, ...]) -> Any:
    """The one value a path without [*] selects (as _find selects it), or MISSING."""
    for step in steps:
        if isinstance(step, str):
            if not isinstance(value, dict) or step not in value:
                return MISSING
            value = value[step]
        elif isinstance(step, int) and not isinstance(step, bool):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return MISSING
            value = value[step]
        else:
            return MISSING
    return value


def _step_text(step: str | int) -> str:
    if isinstance(step, int):
        return f"[{step}]"
    return f".{step}" if _NAME.fullmatch(step) else f"[{step!r}]"


def _locate(value: Any, steps: tuple[Step, ...], where: str) -> Iterator[tuple[str, Any]]:
    if not steps:
        yield where, value
        return
    step, rest = steps[0], steps[1:]
    if step is _WILDCARD:
        if isinstance(value, list):
            for index, child in enumerate(value):
                yield from _locate(child, rest, f"{where}[{index}]")
        elif isinstance(value, dict):
            for key, child in value.items():
                yield from _locate(child, rest, where + _step_text(str(key)))
        else:
            yield f"{where}[*]", MISSING
    elif isinstance(step, int) and not isinstance(step, bool):
        if isinstance(value, list) and -len(value) <= step < len(value):
            yield from _locate(value[step], rest, f"{where}[{step}]")
        else:
            yield f"{where}[{step}]", MISSING
    elif isinstance(step, str) and isinstance(value, dict) and step in value:
        yield from _locate(value[step], rest, where + _step_text(step))
    elif isinstance(step, str):
        yield where + _step_text(step), MISSING


@functools.lru_cache(maxsize=1024)
def _split(steps: tuple[Step, ...]) -> tuple[int, str, str] | None:
    """For a path with one [*] and names or indexes around it (`$.items[*].id`, the common
    condition): where the [*] is and the location text before and after it, so every item's
    location is one join instead of a string built step by step."""
    wild = [i for i, step in enumerate(steps) if step is _WILDCARD]
    if len(wild) != 1:
        return None
    k = wild[0]
    before = "$" + "".join(_step_text(s) for s in steps[:k] if isinstance(s, str | int))
    after = "".join(_step_text(s) for s in steps[k + 1 :] if isinstance(s, str | int))
    return k, before, after


def _locate_items(
    document: Any, steps: tuple[Step, ...], split: tuple[int, str, str]
) -> Iterator[tuple[str, Any]]:
    k, before, after = split
    value = document
    for step in steps[:k]:
        value = _child(value, step)
        if value is MISSING:  # the list itself is missing: said step by step
            yield from _locate(document, steps, "$")
            return
    if isinstance(value, list):
        children: Any = enumerate(value)
    elif isinstance(value, dict):
        yield from _locate(document, steps, "$")
        return
    else:
        yield f"{before}[*]", MISSING
        return
    suffix = steps[k + 1 :]
    for index, child in children:
        found = child
        for step in suffix:
            found = _child(found, step)
            if found is MISSING:
                break
        yield f"{before}[{index}]{after}", found


def _child(value: Any, step: Step) -> Any:
    """One named or indexed step, or MISSING."""
    if isinstance(step, str):
        return value[step] if isinstance(value, dict) and step in value else MISSING
    if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
        return value[step]
    return MISSING
