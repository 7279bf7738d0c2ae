"""Conditions on a response's content: every operator, [*] over items, the tenant's variables,
the JSON Schema, and the reason a responder reads."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.core.conditions import (
    ConditionError,
    compile_condition,
    compile_schema,
    first_failure,
    show,
)

TENANT = {"tenant": "t002", "query": "shoes"}
BODY: dict[str, Any] = {
    "tenant": "t002",
    "recommendations": [
        {"id": "t002-p1", "score": 0.9},
        {"id": "t002-p2", "score": 0.8},
        {"id": "t002-p3", "score": 0.7},
        {"id": "t017-p4", "score": 0.6},
    ],
}


def reason(name: str, path: str, op: str, value: Any = None, **kw: Any) -> str | None:
    failure = compile_condition(name, path, op, value, **kw).judge(BODY, TENANT)
    return None if failure is None else failure.reason()


def test_every_item_must_match_the_tenant_pattern_and_the_reason_names_the_offender() -> None:
    assert reason(
        "item-ids-belong-to-tenant", "$.recommendations[*].id", "matches", "^{tenant}-"
    ) == (
        "condition item-ids-belong-to-tenant failed: $.recommendations[3].id = 't017-p4' "
        "(expected to match '^t002-')"
    )


def test_a_tenant_id_is_regex_escaped_in_a_pattern() -> None:
    condition = compile_condition("c", "$.id", "matches", "^{tenant}$")
    assert condition.judge({"id": "a.b"}, {"tenant": "a.b"}) is None
    assert condition.judge({"id": "axb"}, {"tenant": "a.b"}) is not None
    assert condition.tenant_pattern


@pytest.mark.parametrize(
    ("path", "op", "value", "passes"),
    [
        ("$.tenant", "==", "{tenant}", True),
        ("$.tenant", "!=", "{tenant}", False),
        ("$.recommendations[*].score", ">=", 0.6, True),
        ("$.recommendations[*].score", ">", 0.6, False),
        ("$.recommendations[*].score", "<", 1, True),
        ("$.recommendations[*].score", "<=", 0.8, False),
        ("$.tenant", "in", ["t001", "{tenant}"], True),
        ("$.tenant", "not_in", ["{tenant}"], False),
        ("$.recommendations[0].id", "present", None, True),
        ("$.recommendations[*].title", "present", None, False),
        ("$.error", "absent", None, True),
        ("$.tenant", "absent", None, False),
        ("$.recommendations[*].score", "==", "0.9", False),  # a string is not a number
        ("$.recommendations[*].id", ">", 3, False),  # strings and numbers do not compare
    ],
)
def test_operators(path: str, op: str, value: Any, passes: bool) -> None:
    assert (reason("c", path, op, value) is None) is passes


def test_length_compares_the_size_of_the_list() -> None:
    assert reason("c", "$.recommendations", ">=", 4, length=True) is None
    assert reason("c", "$.recommendations", "==", 5, length=True) == (
        "condition c failed: $.recommendations length = 4 (expected a length == 5)"
    )


def test_a_renamed_field_fails_on_the_first_item_that_lacks_it() -> None:
    renamed = {"recommendations": [{"product_id": "p1"}, {"product_id": "p2"}]}
    failure = compile_condition("ids", "$.recommendations[*].id", "matches", "^p").judge(
        renamed, TENANT
    )
    assert failure is not None
    assert failure.reason() == (
        "condition ids failed: $.recommendations[0].id = absent (expected to match '^p')"
    )


def test_true_is_not_one() -> None:
    assert compile_condition("c", "$.x", "==", 1).judge({"x": True}, {}) is not None
    assert compile_condition("c", "$.x", "==", True).judge({"x": True}, {}) is None


def test_a_missing_variable_fails_the_condition_and_says_which() -> None:
    failure = compile_condition("c", "$.x", "==", "{region}").judge({"x": "eu"}, {})
    assert failure is not None and "no value for {region}" in failure.reason()


def test_long_values_are_cut() -> None:
    assert show("x" * 200) == "'" + "x" * 58 + "…"
    assert len(show(list(range(100)))) == 60


@pytest.mark.parametrize(
    ("op", "value", "length", "message"),
    [
        ("~=", "x", False, "unknown operator '~='"),
        ("matches", "^(unclosed", False, "invalid regular expression '^(unclosed'"),
        ("matches", 5, False, "matches takes a regular expression"),
        ("in", "x", False, "in takes a non-empty list"),
        ("present", "x", False, "present takes no value"),
        ("<", [1], False, "< compares with a number or a string"),
        ("matches", "x", True, "length is compared with"),
        ("==", -1, True, "a length is compared with a whole number"),
    ],
)
def test_malformed_conditions_say_what_is_wrong(
    op: str, value: Any, length: bool, message: str
) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("c", "$.x", op, value, length=length)
    assert message in str(caught.value)


SCHEMA = {
    "type": "object",
    "required": ["recommendations"],
    "properties": {
        "recommendations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string"}, "score": {"type": "number"}},
            },
        }
    },
}


def test_schema_reports_where_and_what() -> None:
    schema = compile_schema(SCHEMA)
    assert first_failure((), schema, BODY, TENANT) is None
    changed = {"recommendations": [{"id": "p1", "score": "0.9"}]}
    failure = first_failure((), schema, changed, TENANT)
    assert failure is not None
    assert failure.reason() == (
        "condition schema failed: $.recommendations[0].score = '0.9' (expected type 'number')"
    )
    renamed = {"recommendations": [{"product_id": "p1"}]}
    failure = first_failure((), schema, renamed, TENANT)
    assert failure is not None
    assert failure.reason() == (
        "condition schema failed: $.recommendations[0].id = absent (a required property is missing)"
    )


def test_an_invalid_schema_is_refused_with_where() -> None:
    with pytest.raises(ConditionError, match="invalid JSON Schema at /properties/x/type"):
        compile_schema({"type": "object", "properties": {"x": {"type": "strnig"}}})


def test_a_shape_only_schema_remembers_valid_shapes_and_still_judges_new_ones() -> None:
    schema = compile_schema(
        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    )
    assert schema.valid_shapes is not None
    assert schema.judge({"n": 1}) is None and schema.judge({"n": 2}) is None
    assert len(schema.valid_shapes) == 1
    failure = schema.judge({"n": 1.5})  # a float of another shape than 1.0
    assert failure is not None and "expected type 'integer'" in failure.reason()
    assert schema.judge({"n": 1.0}) is None
    assert schema.judge({"m": 1}) is not None
    by_value = compile_schema({"properties": {"n": {"enum": [1]}}})
    assert by_value.valid_shapes is None  # values matter: every document validated
    assert by_value.judge({"n": 1}) is None and by_value.judge({"n": 2}) is not None


def test_a_document_too_deep_to_validate_is_a_failure_not_a_crash() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    failure = compile_schema({"type": "array"}).judge(deep)
    assert failure is not None and "nested too deeply" in failure.reason()


@pytest.mark.parametrize(
    "document",
    [
        BODY,
        {"recommendations": [{"id": "a"}, {"other": 1}, "x", None, {"id": {"deep": 1}}]},
        {"recommendations": None},
        {"recommendations": {"k": {"id": "a"}}},
        {},
        [],
    ],
)
def test_the_item_walk_says_the_same_as_the_general_one(document: Any) -> None:
    from monitor.core.jsonpath import _locate, compile_path

    for text in ("$.recommendations[*].id", "$.recommendations[*]", "$.recommendations[*][0]"):
        path = compile_path(text)
        assert list(path.locate(document)) == list(_locate(document, path.steps, "$"))
