"""Request templates: the pieces parsed once render what a substitution of every placeholder
renders, for any text (the property), and a missing value names its variable."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.templating import MissingVariable, parse_template, render_value

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
VALUES = {"tenant": "acme/eu", "query": "red shoes", "search.product": "p-01", "x": "{x}"}


def substituted(text: str, values: dict[str, str], url_encode: bool) -> str:
    """The reference: one regex substitution over the text, as render did before pieces."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = values[match.group(1)]
        return quote(value, safe="") if url_encode else value

    return _PLACEHOLDER.sub(replace, text)


texts = st.lists(
    st.sampled_from(["{tenant}", "{query}", "{search.product}", "{x}", "{{", "}}", "{", "}"])
    | st.text(alphabet="ab/ {}%é", max_size=4),
    max_size=8,
).map("".join)


@given(texts, st.booleans())
def test_rendering_the_pieces_equals_substituting_the_text(text: str, url_encode: bool) -> None:
    template = parse_template(text)
    try:
        expected = substituted(text, VALUES, url_encode)
    except KeyError:
        with pytest.raises(MissingVariable):
            template.render(VALUES, url_encode=url_encode)
        return
    assert template.render(VALUES, url_encode=url_encode) == expected


def test_examples() -> None:
    assert parse_template("/v1/{tenant}/search").render(VALUES, url_encode=True) == (
        "/v1/acme%2Feu/search"
    )
    assert parse_template("{{literal}} {query}").render(VALUES) == "{literal} red shoes"
    assert parse_template("").render({}) == ""
    assert parse_template("plain}}").names == frozenset()
    assert parse_template("plain}}").render({}) == "plain}"
    assert render_value({"q": ["{query}", 3]}, VALUES) == {"q": ["red shoes", 3]}


def test_a_missing_value_names_its_variable() -> None:
    with pytest.raises(MissingVariable) as raised:
        parse_template("/v1/{tenant}/{product}").render({"tenant": "acme"})
    assert raised.value.name == "product"
