"""Vote keys for free-form answers: equal answers written two ways get one vote key.

A process picks one in one line, `key = keys.number` (or `keys.json`, `keys.text`), and
votes then compare the key instead of the answer. A key that cannot read an answer (a
text that is no number) raises, and the sample is red-flagged `invalid`, never counted
apart. What each key merges and keeps apart is in README ("Vote keys").

- `number`: the exact value, written one way: `"1,000"`, `"+1000"`, `"1000.00"`, `"1e3"`
  and `1000` are `"1000"`; `"3/2"` and `"1.50"` are `"1.5"`; `"1/3"` stays `"1/3"`.
  `"10"` and `"1.0"` stay apart, and so do `"0.1"` and `"0.10000000000000001"`.
- `json`: canonical JSON text: keys sorted, no spaces, numbers as `number` writes them
  (`1.0` and `1` are one number); strings exact; `{"a": 1}` and `{"a": "1"}` stay apart.
- `text`: Unicode NFKC, case folded, runs of whitespace one space, no trailing `.!?,;:`.
"""

from __future__ import annotations

import dataclasses
import json as _json
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from math import gcd, isfinite
from typing import Any, final

__all__ = ["Key", "json", "json_key", "number", "number_key", "text", "text_key"]


@final
class Key:
    """A vote key: answer -> the text votes compare. Set as a process's `key` attribute
    (`key = keys.number`); it is called with the answer alone, never bound as a method."""

    __slots__ = ("_fn", "name")

    def __init__(self, name: str, fn: Callable[[Any], str]) -> None:
        self.name = name
        self._fn = fn

    def __call__(self, answer: Any) -> str:
        return self._fn(answer)

    def __repr__(self) -> str:
        return f"keys.{self.name}"

    def __reduce__(self) -> str:
        return self.name  # pickled by name: the same object comes back (Ray workers)


# -- numbers -------------------------------------------------------------------------------
# a sign (ASCII or U+2212), digits (grouped by commas in threes, or not), a fraction, an
# exponent; or a ratio of two integers. ASCII digits only, after NFKC (full-width ones map)
_DECIMAL = re.compile(
    r"([+\-\u2212]?)(?:(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d*))?|\.(\d+))(?:[eE]([+\-]?\d+))?",
    re.ASCII,
)
_RATIO = re.compile(r"([+\-\u2212]?)(\d+)\s*/\s*(\d+)", re.ASCII)
# zeros written out before a number switches to scientific form ("1e21", "1.5e-22"): a
# value with a huge exponent must not become a huge text
_PLAIN_ZEROS = 20


def number_key(answer: Any) -> str:
    """The number an answer is (an int, float, Decimal, Fraction or text), written one
    way; ValueError if it is no finite number, TypeError for a bool or another type."""
    cls = answer.__class__
    if cls is str:
        return _number_text(answer)
    if cls is int:
        return _canonical(answer < 0, str(abs(answer)), 0)
    if cls is float:
        if not isfinite(answer):
            raise ValueError(f"{answer!r} is not a finite number")
        return _number_text(repr(answer))  # the shortest text that is this float
    if isinstance(answer, Decimal):
        if not answer.is_finite():
            raise ValueError(f"{answer!r} is not a finite number")
        sign, digits, exp = answer.as_tuple()
        assert isinstance(exp, int)
        return _canonical(bool(sign), "".join(map(str, digits)), exp)
    if isinstance(answer, Fraction):
        return _ratio(answer.numerator < 0, abs(answer.numerator), answer.denominator)
    raise TypeError(f"keys.number reads numbers and texts, not {cls.__name__}")


def _number_text(text: str) -> str:
    return _decimal_text(unicodedata.normalize("NFKC", text).strip(), text)


def _decimal_text(s: str, text: str) -> str:
    m = _DECIMAL.fullmatch(s)
    if m is not None:
        sign, whole, frac, only_frac, exp = m.groups()
        if only_frac is not None:
            whole, frac = "", only_frac
        frac = frac or ""
        digits = whole.replace(",", "") + frac
        return _canonical(sign not in ("", "+"), digits, (int(exp) if exp else 0) - len(frac))
    m = _RATIO.fullmatch(s)
    if m is not None:
        sign, p, q = m.groups()
        return _ratio(sign not in ("", "+"), int(p), int(q))
    raise ValueError(f"not a number: {text[:40]!r}")


def _canonical(negative: bool, digits: str, exp: int) -> str:
    """sign * digits * 10**exp, written one way: no leading or trailing zeros, plain
    unless that takes more than _PLAIN_ZEROS zeros, then as d.ddde±n."""
    digits = digits.lstrip("0")
    if not digits:
        return "0"  # and -0 is 0
    stripped = digits.rstrip("0")
    exp += len(digits) - len(stripped)
    digits = stripped
    sign = "-" if negative else ""
    point = len(digits) + exp  # where the decimal point falls, counted from the left
    if 0 <= exp <= _PLAIN_ZEROS:
        return sign + digits + "0" * exp
    if exp < 0 and -point <= _PLAIN_ZEROS:
        if point > 0:
            return f"{sign}{digits[:point]}.{digits[point:]}"
        return f"{sign}0.{'0' * -point}{digits}"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{point - 1}"


def _ratio(negative: bool, p: int, q: int) -> str:
    """p/q: as a decimal when it has a finite one ("3/2" is "1.5"), else "p/q" reduced."""
    if q == 0:
        raise ValueError("a ratio with denominator 0 is no number")
    g = gcd(p, q)
    p, q = p // g, q // g
    twos = fives = 0
    rest = q
    while rest % 2 == 0:
        rest //= 2
        twos += 1
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest != 1:
        return f"{'-' if negative and p else ''}{p}/{q}"
    n = max(twos, fives)
    return _canonical(negative, str(p * (10**n // q)), -n)


# -- JSON ------------------------------------------------------------------------------------
# a string as json.dumps writes it (ASCII, escaped), without json.dumps's per-call checks
_quote: Callable[[str], str] = _json.encoder.encode_basestring_ascii


class _Number(str):
    """A number read from JSON text, already written as `number_key` writes it."""

    __slots__ = ()


def _read_float(text: str) -> _Number:
    return _Number(_decimal_text(text, text))  # JSON numbers are ASCII: no NFKC


def _read_int(text: str) -> _Number:
    negative = text.startswith("-")
    return _Number(_canonical(negative, text[1:] if negative else text, 0))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_key(answer: Any) -> str:
    """Canonical JSON of an answer (JSON text, or a value: dict, list, tuple, str, number,
    bool, None, dataclass): keys sorted, no spaces, numbers as `number_key` writes them."""
    if answer.__class__ is str:
        answer = _json.loads(
            answer,
            parse_float=_read_float,
            parse_int=_read_int,
            parse_constant=_refuse_constant,
        )
    return _emit(answer)


def _emit(v: Any) -> str:
    cls = v.__class__
    if cls is str:
        return _quote(v)
    if cls is _Number:
        return str.__str__(v)
    if v is None:
        return "null"
    if cls is bool:
        return "true" if v else "false"
    if cls is int or cls is float or isinstance(v, Decimal):
        return number_key(v)
    if cls is list or cls is tuple:
        return "[" + ",".join(map(_emit, v)) + "]"
    if cls is dict:
        for k in v:
            if k.__class__ is not str:
                raise TypeError(f"keys.json: a dict key of type {k.__class__.__name__}")
        return "{" + ",".join(_quote(k) + ":" + _emit(v[k]) for k in sorted(v)) + "}"
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        fields = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
        return _emit(fields)
    raise TypeError(f"keys.json: {cls.__name__} is not JSON")


# -- text ------------------------------------------------------------------------------------
# what ends a sentence or a clause; NFKC has already made full-width forms ASCII
_TRAILING = " .!?,;:\u3002"


def text_key(answer: Any) -> str:
    """A text compared as people read it: NFKC, case folded, whitespace runs one space,
    no trailing sentence punctuation. TypeError for anything but a str."""
    if answer.__class__ is not str:
        raise TypeError(f"keys.text reads texts, not {answer.__class__.__name__}")
    s = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", answer).casefold())
    return " ".join(s.split()).rstrip(_TRAILING)


number = Key("number", number_key)
json = Key("json", json_key)
text = Key("text", text_key)
