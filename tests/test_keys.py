"""Vote keys for free-form answers: what each merges, what it keeps apart."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from unerring import keys

# -- numbers ---------------------------------------------------------------------------------
# exact decimals: an integer scaled by a power of ten
decimals = st.builds(
    lambda n, e: Decimal(n).scaleb(e), st.integers(-(10**12), 10**12), st.integers(-12, 12)
)


def spellings(d: Decimal, draw: Any) -> list[str]:
    """Ways people and models write one decimal number."""
    plain = format(d, "f")
    out = [plain, format(d, "e"), format(d, "E")]
    if "." in plain:
        out.append(plain + "000")  # trailing zeros
    else:
        out.append(plain + ".0")
        out.append(f"{int(d):,}")  # thousands grouped by commas
    if d >= 0:
        out.append("+" + plain)
    else:
        out.append("\u2212" + plain[1:])  # the minus sign, U+2212
    out.append(f"  {plain}\n")
    frac = Fraction(d)
    scale = draw(st.integers(1, 9))
    out.append(f"{frac.numerator * scale}/{frac.denominator * scale}")
    return out


@settings(max_examples=300, deadline=None)
@given(decimals, st.data())
def test_one_number_written_many_ways_gets_one_key(d: Decimal, data: st.DataObject) -> None:
    want = keys.number(d)
    for text in spellings(d, data.draw):
        assert keys.number(text) == want, text
    assert keys.number(want) == want  # idempotent
    if d == d.to_integral_value():
        assert keys.number(int(d)) == want


@settings(max_examples=300, deadline=None)
@given(st.fractions(max_denominator=10**6), st.fractions(max_denominator=10**6))
def test_different_numbers_keep_different_keys(a: Fraction, b: Fraction) -> None:
    assume(a != b)
    assert keys.number(a) != keys.number(b)
    assert keys.number(keys.number(a)) == keys.number(a)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_is_the_number_its_shortest_text_writes(x: float) -> None:
    assert keys.number(x) == keys.number(repr(x))
    assert float(keys.number(x)) == x


@pytest.mark.parametrize(
    ("texts", "key"),
    [
        (["1000", "1,000", "+1000", "1000.00", "1e3", "1.0E+3", " 1000 ", 1000, 1000.0], "1000"),
        (["1.5", "1.50", "01.5", "3/2", "6 / 4", 1.5, Decimal("1.500"), Fraction(3, 2)], "1.5"),
        (["-0.5", "\u22120.5", "-1/2", "-.5"], "-0.5"),
        (["0", "-0", "0.000", "+0e9", "0/7"], "0"),
        (["1/3", "2/6"], "1/3"),
        (["1e21", "1000000000000000000000"], "1e21"),
        (["1e-30", "0.000000000000000000000000000001"], "1e-30"),
        (["\uff11\uff12"], "12"),  # full-width digits (NFKC)
    ],
)
def test_number_merges(texts: list[Any], key: str) -> None:
    assert {keys.number(t) for t in texts} == {key}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("10", "1.0"),
        ("1,000", "1.000"),  # the decimal point is a point: 1.000 is one
        ("0.1", "0.10000000000000001"),
        ("1/3", "0.333333"),
        ("-1", "1"),
        ("1e3", "1e-3"),
    ],
)
def test_number_keeps_apart(a: str, b: str) -> None:
    assert keys.number(a) != keys.number(b)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1,00", "1,0000", ",5", "1.2.3", "nan", "inf", "1/0", "1 000", "$5", "5%", "0x10"],
)
def test_a_text_that_is_no_number_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        keys.number(text)


def test_a_bool_or_a_list_is_no_number() -> None:
    for value in (True, [1], None, float("nan"), Decimal("inf")):
        with pytest.raises((TypeError, ValueError)):
            keys.number(value)


def test_a_huge_exponent_makes_a_short_key() -> None:
    assert keys.number("1e999999999") == "1e999999999"
    assert keys.number("-2.50e-999999999") == "-2.5e-999999999"


# -- JSON --------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | decimals | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=15,
)


def write(value: Any, draw: Any) -> str:
    """JSON text of a value, spelt one of many ways: key order, spaces, number forms."""
    if isinstance(value, dict):
        items = list(value.items())
        items = draw(st.permutations(items)) if items else items
        sep = draw(st.sampled_from([":", ": ", " : "]))
        body = ", ".join(f"{json.dumps(k)}{sep}{write(v, draw)}" for k, v in items)
        return "{" + body + "}"
    if isinstance(value, list):
        comma: str = draw(st.sampled_from([",", ", ", ",\n  "]))
        return "[" + comma.join(write(v, draw) for v in value) + "]"
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        plain = format(Decimal(value), "f")
        forms = [plain, format(Decimal(value), "e"), plain if "." in plain else plain + ".0"]
        return str(draw(st.sampled_from(forms)))
    return json.dumps(value)


def meaning(value: Any) -> Any:
    """What a JSON value means: numbers by exact value, bools apart from numbers, key
    order nothing."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, (int, Decimal)):
        return ("number", Fraction(value))
    if isinstance(value, list):
        return ("list", tuple(meaning(v) for v in value))
    return ("dict", frozenset((k, meaning(v)) for k, v in value.items()))


@settings(max_examples=300, deadline=None)
@given(json_values, st.data())
def test_one_json_value_written_many_ways_gets_one_key(value: Any, data: st.DataObject) -> None:
    want = keys.json(write(value, data.draw))
    assert keys.json(write(value, data.draw)) == want
    assert keys.json(want) == want  # idempotent
    json.loads(want)  # valid JSON


@settings(max_examples=300, deadline=None)
@given(json_values, json_values, st.data())
def test_different_json_values_keep_different_keys(a: Any, b: Any, data: st.DataObject) -> None:
    assume(meaning(a) != meaning(b))
    assert keys.json(write(a, data.draw)) != keys.json(write(b, data.draw))


def test_json_merges_and_keeps_apart() -> None:
    one = keys.json('{"name": "Ada", "born": 1815, "tags": ["a", "b"]}')
    assert one == '{"born":1815,"name":"Ada","tags":["a","b"]}'
    for same in (
        '{"tags":["a","b"],"born":1815.0,"name":"Ada"}',
        '{\n  "born": 1.815e3,\n  "name": "Ada",\n  "tags": ["a", "b"]\n}',
        {"name": "Ada", "born": 1815, "tags": ("a", "b")},  # a parsed value as well as text
    ):
        assert keys.json(same) == one
    for other in (
        '{"name": "Ada", "born": "1815", "tags": ["a", "b"]}',  # a string is not a number
        '{"name": "ada", "born": 1815, "tags": ["a", "b"]}',  # strings are exact
        '{"name": "Ada", "born": 1815, "tags": ["b", "a"]}',  # lists keep their order
        '{"name": "Ada", "born": 1815}',
    ):
        assert keys.json(other) != one
    assert keys.json('{"a": 1}') != keys.json('{"a": true}')
    # an integer and a float of one value are one number, however large
    big = "1" + "0" * 30
    assert keys.json(f"[{big}, -0, 1e30, 1.0E+30]") == "[1e30,0,1e30,1e30]"
    assert keys.json("[1, 2]") != keys.json('"[1, 2]"')


def test_json_reads_dataclasses_and_refuses_what_is_not_json() -> None:
    @dataclass
    class Rec:
        b: int
        a: str

    assert keys.json(Rec(1, "x")) == '{"a":"x","b":1}'
    for bad in ("{", "NaN", "[Infinity]", {1: 2}, {"a": {1, 2}}, "not json"):
        with pytest.raises((TypeError, ValueError)):
            keys.json(bad)


# -- text --------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_text_key_is_idempotent(text: str) -> None:
    once = keys.text(text)
    assert keys.text(once) == once


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=1, max_size=4), st.data())
def test_case_spacing_and_an_ending_do_not_split_a_text(ws: list[str], data: st.DataObject) -> None:
    want = keys.text(" ".join(ws))
    spaced = "".join(data.draw(st.sampled_from([" ", "  ", "\t", "\n "])) + w for w in ws)
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in spaced)
    ending = data.draw(st.sampled_from(["", ".", "!", "?!", " .", "...", "\u3002", "\uff01"]))
    assert keys.text(cased + ending + " ") == want


@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=1, max_size=3), st.lists(words, min_size=1, max_size=3))
def test_different_words_keep_different_text_keys(a: list[str], b: list[str]) -> None:
    assume(a != b)
    assert keys.text(" ".join(a)) != keys.text(" ".join(b))


def test_text_merges_and_keeps_apart() -> None:
    assert {keys.text(t) for t in ("Paris", "paris.", "  PARIS !", "Ｐａｒｉｓ")} == {"paris"}
    assert keys.text("Straße") == keys.text("STRASSE")  # case folded, not just lowered
    assert keys.text("ﬁne") == "fine"  # NFKC: the ligature is two letters
    assert keys.text("f(x)") == "f(x)"  # brackets and quotes are not endings
    for a, b in (("Paris", "Paris, France"), ("a b", "ab"), ("3.14", "314"), ("U.S.", "US")):
        assert keys.text(a) != keys.text(b)
    with pytest.raises(TypeError):
        keys.text(5)


def test_a_key_pickles_as_itself() -> None:
    for key in (keys.number, keys.json, keys.text):
        assert pickle.loads(pickle.dumps(key)) is key
        assert repr(key) == f"keys.{key.name}"
