"""JSON text for plain values: exact round trips, plain JSON where the type is declared,
one-line refusals, and loading that builds only the dataclasses it was given."""

from __future__ import annotations

import copy
import enum
import json
import re
from dataclasses import dataclass, field, make_dataclass
from typing import Any, NamedTuple, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unerring.core.serial import SerialError, ValueCodec, codecs


class Color(enum.Enum):
    RED = 1


@dataclass(frozen=True)
class Point:
    x: int
    y: float = 0.0


@dataclass
class Tree:
    label: str
    kids: list[Tree] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Boxed:
    inner: Any
    pair: tuple[int, str] = (0, "")


def codec(declared: Any, known: tuple[type, ...] = (Point, Tree, Boxed)) -> ValueCodec:
    return codecs([("state", declared)], known)[0]


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True, (1,) != [1])."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (Point, Tree, Boxed)):
        return same(vars(a), vars(b))
    return bool(a == b)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
keys = st.text(max_size=6) | st.sampled_from(["#", "#()", "#[]", "#{}", "#Point", "#x"])


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
        | st.builds(Point, st.integers(), st.floats(allow_nan=False, allow_infinity=False))
        | st.builds(
            Tree, st.text(max_size=4), st.just([]), st.dictionaries(keys, inner, max_size=2)
        )
        | st.builds(Boxed, inner, st.tuples(st.integers(), st.text(max_size=3)))
    )


values = st.recursive(scalars, _containers, max_leaves=20)

DECLARED = [
    Any,
    tuple[Any, ...],
    list[Any],
    dict[str, Any],
    tuple[int, str],
    tuple[tuple[int, ...], ...],
    Point,
    Tree,
    Optional[Point],  # noqa: UP045 (typing.Optional must work as well as `| None`)
    int | tuple[int, ...],
    list[int] | tuple[int, ...],
    Point | Tree,
    dict[str, tuple[int, ...]] | list[Point],
]


@settings(max_examples=400, deadline=None)
@given(values, st.sampled_from(DECLARED))
def test_every_value_comes_back_as_it_went_in_whatever_was_declared(
    value: Any, declared: Any
) -> None:
    c = codec(declared)
    text = c.dump(value)
    back = c.load(text)
    assert same(back, value), (text, back)
    assert c.dump(back) == text  # deterministic: one value, one text
    assert c.dump(copy.deepcopy(value)) == text
    json.loads(text)  # always valid JSON


def test_declared_types_give_plain_compact_json() -> None:
    pegs = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    hanoi = codec(tuple[pegs, tuple[int, int, int] | None])
    state = (((3, 2), (1,), ()), (0, 2, 1))
    assert hanoi.dump(state) == "[[[3,2],[1],[]],[0,2,1]]"
    assert hanoi.load("[[[3,2],[1],[]],null]") == (((3, 2), (1,), ()), None)
    assert codec(Tree).dump(Tree("r", [Tree("c")])) == (
        '{"label":"r","kids":[{"label":"c","kids":[],"meta":{}}],"meta":{}}'
    )
    assert codec(dict[str, list[int]]).dump({"a": [1, 2]}) == '{"a":[1,2]}'
    # nothing declared: lists and dicts are plain JSON; tuples and dataclasses are tagged
    free = codec(Any)
    assert free.dump([1, {"a": None}]) == '[1,{"a":null}]'
    assert free.dump((1, 2)) == '{"#()":[1,2]}'
    assert free.dump(Point(1)) == '{"#Point":{"x":1,"y":0.0}}'
    # a dict that reads as a tag is escaped; one with other keys beside is plain
    assert free.dump({"#()": 1}) == '{"#{}":{"#()":1}}'
    assert free.dump({"#()": 1, "b": 2}) == '{"#()":1,"b":2}'


def test_a_dict_keeps_its_key_order() -> None:
    # a restored state iterates as the original did, so prompts built from it match
    c = codec(dict[str, int])
    back = c.load(c.dump({"b": 1, "a": 2}))
    assert list(back) == ["b", "a"]


def test_a_dataclass_field_added_with_a_default_still_loads_old_text() -> None:
    c = codec(Point)
    assert c.load('{"x":3}') == Point(3, 0.0)


@pytest.mark.parametrize(
    ("value", "where", "what"),
    [
        ({1, 2}, "state", "set is not JSON-able"),
        ((1, {"a": [frozenset()]}), "state[1]['a'][0]", "frozenset is not JSON-able"),
        ({"a": {3: "x"}}, "state['a']", "a dict key of type int (3)"),
        ([1.0, float("nan")], "state[1]", "float nan is not JSON"),
        ((float("inf"),), "state[0]", "float inf is not JSON"),
        (Boxed(object()), "state.inner", "object is not JSON-able"),
        (Boxed(Color.RED), "state.inner", "Color is not JSON-able"),
    ],
)
def test_what_cannot_be_written_is_named_in_one_line(value: Any, where: str, what: str) -> None:
    with pytest.raises(SerialError) as got:
        codec(Any).dump(value)
    message = str(got.value)
    assert "\n" not in message
    assert f"cannot serialise {where}: " in message and what in message, message


def test_a_dataclass_the_codec_was_not_given_is_refused_by_name() -> None:
    @dataclass
    class Secret:
        x: int

    with pytest.raises(SerialError, match=r"state\[0\]: dataclass .*Secret is not declared"):
        codec(Any, known=()).dump((Secret(1),))


def test_subclasses_of_supported_types_are_refused_not_flattened() -> None:
    class Pair(NamedTuple):
        a: int
        b: int

    class Level(enum.IntEnum):
        LOW = 1

    for value in (Pair(1, 2), Level.LOW, True.__class__):
        with pytest.raises(SerialError):
            codec(Any).dump(value)


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerialError, match="nested too deep, or contains itself"):
        codec(Any).dump(loop)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"#os.system":{"command":"true"}}', "names 'os.system', not a dataclass"),
        ('{"#Point":{"x":1}}', "names 'Point', not a dataclass"),  # not given to this codec
        ('{"#()":{"a":1}}', "#() tags a dict"),
        ('{"#Tree":[1]}', "#Tree tags a list"),
        ("[1,", "not JSON"),
    ],
)
def test_loading_builds_nothing_the_text_names(text: str, error: str) -> None:
    with pytest.raises(SerialError, match=re.escape(error)):
        codec(Any, known=(Tree,)).load(text)


def test_a_dataclass_whose_fields_changed_is_refused() -> None:
    with pytest.raises(SerialError, match="dataclass Point needs x"):
        codec(Point).load('{"y":1.0}')
    with pytest.raises(SerialError, match="dataclass Point has no z"):
        codec(Point).load('{"x":1,"z":2}')


def test_two_dataclasses_of_one_name_are_refused_when_the_codec_is_built() -> None:
    other = make_dataclass("Point", [("x", int)])  # another module's Point, say
    with pytest.raises(SerialError, match="two dataclasses are named Point"):
        codecs([("state", tuple[Point, other])])  # type: ignore[valid-type]
    with pytest.raises(SerialError, match="not a dataclass"):
        codecs([("state", Any)], known=(int,))


def test_a_dataclass_annotation_that_does_not_resolve_leaves_its_field_undeclared() -> None:
    @dataclass
    class Local:
        inner: Missing  # type: ignore[name-defined]  # noqa: F821

    c = codecs([("state", Local)])[0]
    value = Local((1, 2))
    assert c.dump(value) == '{"inner":{"#()":[1,2]}}'
    assert c.load(c.dump(value)) == value
