"""A response body decoded as `json.loads(body)` would, at orjson's speed (about 4x).

orjson.loads parses the bodies every healthy probe gets (UTF-8, finite numbers, 64-bit
integers) to the same document; everything else falls back to json.loads itself, so the
document or the exception (type and message: a probe's reason text) is the standard library's:

- orjson rejects what json accepts: NaN/Infinity, floats beyond double (json: inf), lone
  surrogates, a UTF-8 BOM, UTF-16/32 (json.loads detects them on bytes; orjson's UTF-8 never
  parses a body json would read as another encoding: a NUL in the first two bytes is invalid
  JSON), nesting beyond 1,024 levels. Its errors word things differently: json's message is kept.
- orjson reads an integer beyond 64 bits as a float, silently: a body with 19 digits in a row
  anywhere (every such integer has them; strings and long fractions too, harmlessly) goes to
  json.loads first. Found by translate + `in` (0.4-0.8 us for 300-800 bytes; a regex takes 10x).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
# 18 digits always fit in 64 bits (signed and unsigned); 19 may not.
_LONG_DIGIT_RUN = b"0" * 19


def loads_json(body: bytes) -> Any:
    """`json.loads(body)`: the same document, or the same exception."""
    if _LONG_DIGIT_RUN not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # json.loads below, outside this handler: its exception carries no context
    return json.loads(body)
