"""Conditions on a response's content: compiled once from the configuration, judged per probe.

A condition names a JSON path, an operator and a value: `$.tenant == "{tenant}"`, every
`$.recommendations[*].id` matches `^{tenant}-`, `$.recommendations` has a length of at least
5, `$.next` is absent. Over a path with [*] every item must pass. String values and patterns
take the tenant's variables ({tenant}, {query}, ...; a pattern gets them regex-escaped). A JSON
Schema (the `jsonschema` library, any draft it knows) checks the shape as a whole.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.core.jsonpath import MISSING, JsonPath, JsonPathError, compile_path
from monitor.core.templating import MissingVariable, Template, parse_template

if TYPE_CHECKING:
    import jsonschema.protocols

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
OPERATORS = (*COMPARISONS, "in", "not_in", "matches", "present", "absent")
SCHEMA = "schema"  # the name a failed JSON Schema is reported under
# An offending value is shown cut to this many characters: enough to recognise it, never a
# whole body in a page.
SHOWN_CHARS = 60


class ConditionError(ValueError):
    """A condition or schema that cannot be judged (the loader says where)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """The first thing a condition found wrong: where, what was there, what was expected."""

    condition: str
    location: str
    value: Any  # MISSING where the document had nothing
    expected: str

    def reason(self, shown: str | None = None) -> str:
        """ "condition item-ids-belong-to-tenant failed: $.recommendations[3].id = 't017-p4'
        (expected matches '^t002-')"; `shown` replaces the value (redacted by the caller)."""
        text = show(self.value) if shown is None else shown
        return f"condition {self.condition} failed: {self.location} = {text} ({self.expected})"


def show(value: Any) -> str:
    """A value as a page shows it: strings quoted, anything else as JSON, cut."""
    if value is MISSING:
        return "absent"
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    path: JsonPath
    op: str
    value: Any
    length: bool = False
    # The value (matches: the pattern) as a template, when it has {placeholders}.
    template: Template | None = None

    @property
    def names(self) -> frozenset[str]:
        """Template variables the value uses."""
        names = set(self.template.names) if self.template is not None else set()
        if isinstance(self.value, list):
            for item in self.value:
                if isinstance(item, str):
                    names |= parse_template(item).names
        return frozenset(names)

    @property
    def tenant_pattern(self) -> bool:
        """A pattern naming the tenant (`^{tenant}-`): items that belong to another tenant
        can be told by it."""
        return self.op == "matches" and "tenant" in self.names

    def expected_for(self, values: Mapping[str, str]) -> Any:
        """The value to compare with, the tenant's variables in it."""
        if self.template is not None:
            if self.op == "matches":
                return _pattern(self.template, values)
            return self.template.render(values)
        if isinstance(self.value, list):
            return [
                parse_template(v).render(values) if isinstance(v, str) else v for v in self.value
            ]
        return self.value

    def judge(self, document: Any, values: Mapping[str, str]) -> Failure | None:
        try:
            expected = self.expected_for(values)
        except MissingVariable as exc:
            return Failure(self.name, self.path.text, MISSING, f"no value for {{{exc.name}}}")
        for location, found in self.path.locate(document):
            if not self._passes(found, expected):
                expectation = self._expectation(expected, values)
                if self.length and isinstance(found, list | str | dict):
                    return Failure(self.name, f"{location} length", len(found), expectation)
                return Failure(self.name, location, found, expectation)
        return None

    def _passes(self, found: Any, expected: Any) -> bool:
        op = self.op
        if op == "present":
            return found is not MISSING
        if op == "absent":
            return found is MISSING
        if found is MISSING:
            return False
        if self.length:
            if not isinstance(found, list | str | dict):
                return False
            found = len(found)
        if op == "matches":
            if isinstance(found, bool) or not isinstance(found, str | int | float):
                return False
            return expected.search(str(found)) is not None
        if op in ("in", "not_in"):
            inside = any(_equal(found, item) for item in expected)
            return inside if op == "in" else not inside
        if op == "==":
            return _equal(found, expected)
        if op == "!=":
            return not _equal(found, expected)
        if not (
            (_number(found) and _number(expected))
            or (isinstance(found, str) and isinstance(expected, str))
        ):
            return False
        if op == "<":
            return bool(found < expected)
        if op == "<=":
            return bool(found <= expected)
        if op == ">":
            return bool(found > expected)
        return bool(found >= expected)

    def _expectation(self, expected: Any, values: Mapping[str, str]) -> str:
        if self.op in ("present", "absent"):
            return f"expected {self.op}"
        if self.op == "matches" and self.template is not None:
            # The pattern as written, the values in it unescaped: what a responder reads.
            return f"expected to match {show(self.template.render(values))}"
        what = "a length " if self.length else ""
        return f"expected {what}{self.op.replace('_', ' ')} {show(expected)}"


def _equal(found: Any, expected: Any) -> bool:
    # JSON's true is not 1, though Python's True == 1.
    if isinstance(found, bool) != isinstance(expected, bool):
        return False
    return bool(found == expected)


@functools.lru_cache(maxsize=16_384)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_PATTERNS: dict[tuple[str, tuple[str, ...]], re.Pattern[str]] = {}
_PATTERNS_KEPT = 65_536


def _pattern(template: Template, values: Mapping[str, str]) -> re.Pattern[str]:
    """The pattern with the tenant's values in it, regex-escaped (a tenant "a.b" is "a\\.b");
    rendered and compiled once per tenant (escaping and rendering on every probe were a
    tenth of a probe's content judgement)."""
    names = sorted(template.names)
    try:
        key = (template.text, tuple(values[name] for name in names))
    except KeyError as exc:
        raise MissingVariable(str(exc.args[0])) from None
    pattern = _PATTERNS.get(key)
    if pattern is None:
        if len(_PATTERNS) >= _PATTERNS_KEPT:
            _PATTERNS.clear()
        escaped = {name: re.escape(values[name]) for name in names}
        pattern = _PATTERNS[key] = _compiled(template.render(escaped))
    return pattern


def compile_condition(
    name: str, path: str | JsonPath, op: str, value: Any = None, *, length: bool = False
) -> Condition:
    """Raises ConditionError with what is wrong (an unknown operator, a bad pattern, ...)."""
    try:
        compiled_path = path if isinstance(path, JsonPath) else compile_path(path)
    except JsonPathError as exc:
        raise ConditionError(str(exc)) from None
    if op not in OPERATORS:
        raise ConditionError(f"unknown operator {op!r}; known: {', '.join(OPERATORS)}")
    template = None
    if op in ("present", "absent"):
        if value is not None or length:
            raise ConditionError(f"{op} takes no value and no length")
    elif length:
        if op not in COMPARISONS:
            raise ConditionError(f"length is compared with {', '.join(COMPARISONS)}, not {op}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConditionError("a length is compared with a whole number, 0 or more")
    elif op == "matches":
        if not isinstance(value, str):
            raise ConditionError("matches takes a regular expression (a string)")
        template = parse_template(value)
        try:
            re.compile(template.render(dict.fromkeys(template.names, "x")))
        except re.error as exc:
            raise ConditionError(f"invalid regular expression {value!r}: {exc}") from None
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ConditionError(f"{op} takes a non-empty list of values")
    elif op in ("<", "<=", ">", ">="):
        if not (_number(value) or isinstance(value, str)):
            raise ConditionError(f"{op} compares with a number or a string")
        if isinstance(value, str):
            template = parse_template(value)
    elif isinstance(value, str):  # == and != also compare numbers, null, lists, objects
        template = parse_template(value)
    return Condition(name, compiled_path, op, value, length, template)


# Keywords whose verdict depends only on a document's shape (keys, lengths, JSON types), not
# on its values: a schema made of these gives the same verdict for every document of one shape.
_SHAPE_KEYWORDS = frozenset(
    {
        "type", "required", "properties", "items", "additionalProperties", "minItems",
        "maxItems", "minProperties", "maxProperties", "$schema", "$id", "title",
        "description", "$comment", "examples", "default",
    }
)  # fmt: skip
_SHAPES_KEPT = 4096


def _shape_only(schema: object) -> bool:
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key not in _SHAPE_KEYWORDS:
            return False
        if key == "properties" and not (
            isinstance(value, dict) and all(_shape_only(v) for v in value.values())
        ):
            return False
        if key in ("items", "additionalProperties") and not _shape_only(value):
            return False
    return True


def _shape(value: Any) -> Any:
    """The document without its values: keys, lengths and JSON types (an integral float apart,
    as JSON Schema's "integer" accepts 1.0)."""
    if isinstance(value, dict):
        return ("o", *((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("a", *(_shape(v) for v in value))
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "I" if value.is_integer() else "f"
    return "s" if isinstance(value, str) else "n"


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """A JSON Schema, its validator built once."""

    schema: Mapping[str, Any]
    validator: jsonschema.protocols.Validator
    # Shapes already found valid, when the schema judges only shapes: jsonschema's walk was
    # three quarters of a probe's CPU with a schema (bench/content.py); one shape is what a
    # healthy API answers nearly every time, told apart in a tenth of that.
    valid_shapes: set[Any] | None = None

    def judge(self, document: Any) -> Failure | None:
        try:
            shapes = self.valid_shapes
            if shapes is None:
                return self._judge(document)
            shape = _shape(document)
            if shape in shapes:
                return None
            failure = self._judge(document)
            if failure is None:
                if len(shapes) >= _SHAPES_KEPT:
                    shapes.clear()
                shapes.add(shape)
            return failure
        except RecursionError:
            return Failure(SCHEMA, "$", MISSING, "nested too deeply to validate")

    def _judge(self, document: Any) -> Failure | None:
        # The first error in document order ($.items[0] before $.items[4]), with best_match
        # only choosing within it (the branch of an anyOf that came closest).
        first = next(iter(self.validator.iter_errors(document)), None)
        if first is None:
            return None
        import jsonschema.exceptions

        error = jsonschema.exceptions.best_match([first]) or first
        location = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        )
        # The validator's words about the value, without the value (shown cut, separately).
        expected = {
            "type": f"expected type {show(error.validator_value)}",
            "required": "a required property is missing",
            "enum": "expected one of the schema's values",
            "pattern": f"expected to match {show(error.validator_value)}",
        }.get(str(error.validator), f"fails the schema's {error.validator!s}")
        value: Any = error.instance
        required = error.validator_value
        if error.validator == "required" and isinstance(error.instance, dict):
            assert isinstance(required, list)
            missing = [k for k in required if k not in error.instance]
            location += f".{missing[0]}" if missing else ""
            value = MISSING
        return Failure(SCHEMA, location, value, expected)


def compile_schema(schema: object) -> SchemaCheck:
    if not isinstance(schema, dict):
        raise ConditionError("a JSON Schema is a mapping of keys")
    # Imported here, by the configurations that have a schema: ~40 ms of CPU on every recmon
    # start otherwise.
    import jsonschema
    import jsonschema.exceptions

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "".join(f"/{part}" for part in exc.absolute_path) or "/"
        raise ConditionError(f"invalid JSON Schema at {where}: {exc.message}") from None
    return SchemaCheck(schema, cls(schema), set() if _shape_only(schema) else None)


def first_failure(
    conditions: Sequence[Condition],
    schema: SchemaCheck | None,
    document: Any,
    values: Mapping[str, str],
) -> Failure | None:
    """The schema first (a shape that is wrong explains the rest), then each condition."""
    if schema is not None:
        failure = schema.judge(document)
        if failure is not None:
            return failure
    for condition in conditions:
        failure = condition.judge(document, values)
        if failure is not None:
            return failure
    return None
