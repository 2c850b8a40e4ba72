"""The shared checks: conversions, bounds and how problems are collected under their field paths."""

from __future__ import annotations

import enum

import pytest

from relay_core.field_checks import FieldError, FieldErrors, Fields, dotted, integer, items, number, text


class Colour(str, enum.Enum):
    RED = "red"


def test_checks_accept_exactly_their_type_and_bounds():
    assert text(max_length=3)(Colour.RED) == "red" and type(text()(Colour.RED)) is str
    assert number(gt=0)(5e-324) == 5e-324 and type(number()(3)) is float
    with pytest.raises(FieldError, match="^input should be greater than 0$"):
        number(gt=0)(0.0)
    with pytest.raises(FieldError, match="^input should be greater than 1$"):
        integer(gt=1)(1)
    assert integer()(10**30) == 10**30  # unbounded means unbounded
    for not_an_int in (True, 1.0, "1", None):
        with pytest.raises(FieldError, match="^input should be a valid integer$"):
            integer()(not_an_int)


def test_list_items_are_each_checked_and_every_bad_one_is_reported_under_its_index():
    with pytest.raises(FieldErrors) as caught:
        items(text(min_length=1))(["a", "", 3])
    assert [(e.path, e.problem) for e in caught.value.errors] == [
        ((1,), "string should have at least 1 character"),
        ((2,), "input should be a valid string"),
    ]


def test_fields_collects_every_problem_in_order_with_aliases_and_unknown_keys():
    f = Fields({"cosObject": {"size": "x"}, "snake_case": 1, "extra": 2})

    def cos_object(value: object) -> None:
        inner = Fields(value)
        inner.take("key", text())
        inner.take("size", integer())
        inner.finish()

    f.take("cos_object", cos_object, alias="cosObject")
    assert f.take("snake_case", integer(), alias="snakeCase") == 1  # the field's own name is read when no alias is
    assert f.take("absent", integer(), 7) == 7
    with pytest.raises(FieldErrors) as caught:
        f.finish(forbid_unknown=True)
    assert [str(e) for e in caught.value.errors] == [
        "cosObject.key: field required",
        "cosObject.size: input should be a valid integer",
        "extra: unknown field",
    ]


def test_a_value_that_is_not_an_object_is_one_problem_not_one_per_field():
    f = Fields(["not", "an", "object"], not_an_object="not a JSON object")
    assert f.take("key", text()) is None
    with pytest.raises(FieldError) as caught:
        f.finish(forbid_unknown=True)
    assert (caught.value.path, str(caught.value)) == ((), "not a JSON object")


def test_paths_read_as_written():
    assert dotted(("Records", 1, "cos", "cosObject")) == "Records[1].cos.cosObject"
    assert dotted((0, "key")) == "[0].key" and dotted(()) == ""
    assert str(FieldError("field required", ("nodes", 1, "value"))) == "nodes[1].value: field required"
