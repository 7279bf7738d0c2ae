"""loads_json against json.loads: the same document (types, order, -0.0, NaN) or the same error."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.core import jsondecode
from monitor.core.jsondecode import loads_json

# CPU-bound (hypothesis generates a few hundred bodies), no clock: tests/run.py runs it at idle
# priority beside the other phases.
pytestmark = pytest.mark.background


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down: 1 is not 1.0, -0.0 is not 0.0, key order
    counts, NaN equals NaN. Iterative: documents nest deeper than Python's recursion limit."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if math.isnan(x):
                if not math.isnan(y):
                    return False
            elif x != y or math.copysign(1, x) != math.copysign(1, y):
                return False
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif isinstance(x, dict):
            if list(x) != list(y):
                return False
            pending.extend((x[k], y[k]) for k in x)
        elif x != y:
            return False
    return True


def _outcome(decode: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "document", decode(body)
    except (ValueError, RecursionError) as exc:
        return "error", (type(exc), str(exc), exc.args)


def assert_like_json(body: bytes) -> None:
    ours, theirs = _outcome(loads_json, body), _outcome(json.loads, body)
    assert ours[0] == theirs[0], (body, ours, theirs)
    if ours[0] == "document":
        assert _same(ours[1], theirs[1]), (body, ours[1], theirs[1])
    else:
        assert ours[1] == theirs[1], body


# Number literals as JSON spells them: huge integers, long mantissas, exponents past double.
numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,45})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?", fullmatch=True
)
# Every code point, lone surrogates too; short keys so that objects repeat keys.
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
keys = st.text(st.sampled_from("ab\u00e9\u20ac\U0001f600\ud800"), max_size=2)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN, Infinity, -0.0: json.dumps writes them, json.loads reads them
    texts,
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """JSON text, also with repeated keys and literal numbers json.dumps never writes."""
    kind = draw(st.sampled_from(("dumps", "numbers", "duplicates")))
    if kind == "numbers":
        return "[" + ",".join(draw(st.lists(numbers, min_size=1, max_size=4))) + "]"
    if kind == "duplicates":
        pairs = draw(st.lists(st.tuples(keys, documents), max_size=6))
        return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"
    return json.dumps(
        draw(documents),
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.none() | st.integers(0, 2)),
        separators=draw(st.sampled_from((None, (",", ":"), (" , ", " : ")))),
    )


ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    text = draw(json_texts())
    if draw(st.booleans()):
        text = (
            draw(st.sampled_from(("", " ", "\n\t")))
            + text
            + draw(st.sampled_from(("", " \r\n", "x", "\x00", "[]")))
        )
    body = text.encode(draw(st.sampled_from(ENCODINGS)), "surrogatepass")
    damage = draw(st.sampled_from(("none", "none", "truncate", "insert")))
    if damage == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif damage == "insert":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=3)) + body[at:]
    return body


@settings(max_examples=400, deadline=None)
@given(bodies())
@example(b"18446744073709551615")  # the largest unsigned 64-bit integer: orjson's
@example(b"18446744073709551616")  # one more: orjson would read a float
@example(b"-9223372036854775809")
@example(b'{"n": [123456789012345678901234567890, 1.5]}')
@example(b"[NaN, Infinity, -Infinity]")
@example(b"[1e400, -1e400, 1e-400, -0.0, -0, 0.1, 5e-324, 1.7976931348623157e308]")
@example(b'["\\ud800", "\\udc00\\ud800", "\\ud83d\\ude00"]')
@example(b'"\xed\xa0\x80"')  # a surrogate in UTF-8 bytes: json reads it (surrogatepass)
@example(b"\xef\xbb\xbf[1]")
@example('{"a": "\u00e9"}'.encode("utf-16"))
@example(b"1\x00")  # json: UTF-16-LE "1"
@example(b"")
@example(b"  ")
@example(b'{"a": 1, "a": 2, "b": 3, "a": 4}')
@example(b'"\x01"')
@example(b"[1,]")
@example(b"\xff\xfe\xfd")
@example(b"[" * 1025 + b"]" * 1025)  # beyond orjson's nesting limit, within json's
@example(b"[" * 100_000 + b"]" * 100_000)  # json: RecursionError
def test_decodes_every_body_as_json_loads_does(body: bytes) -> None:
    assert_like_json(body)


@given(st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_decodes_arbitrary_bytes_as_json_loads_does(body: bytes) -> None:
    assert_like_json(body)


def test_an_ordinary_body_takes_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the module: a healthy probe's body never reaches json.loads."""

    def refuse(body: bytes) -> Any:
        raise AssertionError("json.loads called")

    monkeypatch.setattr(jsondecode.json, "loads", refuse)
    body = b'{"tenant": "t-1", "recommendations": [{"id": "t-1-p02", "score": 0.85}], "n": 12345}'
    assert loads_json(body) == {
        "tenant": "t-1",
        "recommendations": [{"id": "t-1-p02", "score": 0.85}],
        "n": 12345,
    }
