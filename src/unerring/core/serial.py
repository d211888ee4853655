"""JSON text for the plain values a process's states and answers are made of.

Supported: None, bool, int, float (finite), str, list, tuple, dict with str keys, and
dataclasses of those, nested. The declared type (`Process[State, Answer]`) says what a
JSON array or object stands for at each place: where it does, the text is plain compact
JSON (`((3, 2, 1), (), ())` declared as a tuple of tuples is `[[3,2,1],[],[]]`); where it
does not (Any, a union of a tuple and a list), a one-key object tags the value (`{"#()":
[...]}` a tuple, `{"#[]": [...]}` a list, `{"#{}": {...}}` a dict that could be read as
a tag, `{"#Point": {...}}` a dataclass), so every value comes back as the type it went in
as, whatever was declared.

Deterministic: one value, one text (dict keys keep their order, so a restored state
iterates as the original did). Safe: loading builds no class the text names; a dataclass
is built only if it is one this codec was given (the declared types and the process's
`known_types`). Anything else is refused in one line naming where it sits and its type.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Union, get_args, get_origin

# tags for values whose declared type does not say what they are (not identifiers, so no
# dataclass's tag can clash with them)
TUPLE, LIST, DICT = "#()", "#[]", "#{}"

_NONE, _TUPLE, _LIST = 0, 1, 2  # what a JSON array is at a place
_DICT, _DATACLASS = 1, 2  # what a JSON object is (or _NONE: a dict, undeclared)

_SCALARS = frozenset({type(None), bool, int, float, str})
_CONTAINERS = frozenset({list, dict})  # what json.loads makes besides scalars
_SUPPORTED = "None, bool, int, float, str, list, tuple, dict with str keys, dataclasses"

# compact, no NaN (not JSON), ASCII (a lone surrogate in a string stays storable)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False)
_DECODER = json.JSONDecoder()


class SerialError(TypeError, ValueError):
    """A value that cannot be written as JSON text, or a text that cannot be read back."""


class _Refused(Exception):
    """Raised inside the fast walk; the slow walk then finds where and why."""


class _Dataclass:
    """A dataclass the codec may build: its tag and its init fields' places."""

    __slots__ = ("cls", "fields", "names", "required", "tag")

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.tag = "#" + cls.__qualname__
        self.fields: tuple[tuple[str, Spec], ...] = ()
        self.names: frozenset[str] = frozenset()
        self.required: frozenset[str] = frozenset()


class Spec:
    """What a declared type says about one place in a value: what a JSON array there is
    (a tuple, with its items' places, or a list) and what a JSON object is (a dict, or
    one dataclass). Scalars need no spec: JSON tells them apart itself."""

    __slots__ = ("array", "dataclass", "fixed", "item", "obj", "value")

    def __init__(
        self,
        array: int = _NONE,
        fixed: tuple[Spec, ...] | None = None,
        item: Spec | None = None,
        obj: int = _NONE,
        value: Spec | None = None,
        dataclass: _Dataclass | None = None,
    ) -> None:
        self.array = array
        self.fixed = fixed  # a fixed-length tuple's items (None: any length)
        self.item = FREE if item is None else item  # items of a list or a tuple[X, ...]
        self.obj = obj
        self.value = FREE if value is None else value  # a dict's values
        self.dataclass = dataclass


FREE: Spec = Spec.__new__(Spec)  # nothing declared: every container says what it is
FREE.array, FREE.fixed, FREE.obj, FREE.dataclass = _NONE, None, _NONE, None
FREE.item = FREE.value = FREE


class ValueCodec:
    """Dump and load one kind of value (a process's states, or its answers)."""

    __slots__ = ("_by_class", "_by_tag", "spec", "what")

    def __init__(self, spec: Spec, known: Iterable[_Dataclass], what: str = "value") -> None:
        self.spec = spec
        self.what = what
        self._by_class = {d.cls: d for d in known}
        self._by_tag = {d.tag: d for d in known}

    def dump(self, value: Any) -> str:
        """The value as compact JSON text; SerialError names what cannot be written."""
        try:
            return _ENCODER.encode(self._enc(value, self.spec))
        except (_Refused, ValueError, RecursionError) as e:
            raise SerialError(self._why(value, e)) from None

    def load(self, text: str) -> Any:
        """The value `dump` wrote; SerialError says what cannot be read back."""
        try:
            return self._dec(_DECODER.decode(text), self.spec)
        except SerialError:
            raise
        except json.JSONDecodeError as e:
            raise SerialError(f"cannot read a {self.what} from its text: not JSON ({e})") from None
        except (TypeError, ValueError, RecursionError) as e:
            raise SerialError(f"cannot read a {self.what} from its text: {e}") from None

    # -- writing ---------------------------------------------------------------------------
    def _enc(self, v: Any, spec: Spec) -> Any:
        cls = v.__class__
        if cls is tuple:  # first: what states are mostly made of
            if spec.array == _TUPLE:
                fixed = spec.fixed
                if fixed is None or len(fixed) != len(v):
                    return self._seq(v, spec.item)
                if _SCALARS.issuperset(map(type, v)):  # in C: no call per item
                    return list(v)
                return list(map(self._enc, v, fixed))  # map: no comprehension frame
            return {TUPLE: self._seq(v, spec.item)}
        if cls in _SCALARS:
            return v
        if cls is list:
            if spec.array == _TUPLE:
                return {LIST: self._seq(v, spec.item)}
            return self._seq(v, spec.item)
        if cls is dict:
            for k in v:
                if k.__class__ is not str:
                    raise _Refused
            val = spec.value
            body = {k: self._enc(x, val) for k, x in v.items()}
            # a dict where a dataclass is declared, or one that reads as a tag, is tagged
            if spec.obj == _DATACLASS or (len(v) == 1 and next(iter(v)).startswith("#")):
                return {DICT: body}
            return body
        d = self._by_class.get(cls)
        if d is None:
            raise _Refused
        fields = {name: self._enc(getattr(v, name), s) for name, s in d.fields}
        if spec.obj == _DATACLASS and spec.dataclass is d:
            return fields
        return {d.tag: fields}

    def _seq(self, v: Sequence[Any], item: Spec) -> list[Any]:
        if _SCALARS.issuperset(map(type, v)):  # the common case, checked in C
            return list(v)
        return list(map(self._enc, v, repeat(item)))

    def _why(self, value: Any, error: Exception) -> str:
        """One line: where in the value the first thing that cannot be written sits."""
        if isinstance(error, RecursionError):
            return f"cannot serialise a {self.what}: it is nested too deep, or contains itself"
        found = self._find(value, self.what)
        return f"cannot serialise {found or f'a {self.what}: {error}'}"

    def _find(self, v: Any, path: str) -> str | None:
        cls = v.__class__
        if cls is float and (v != v or v in (float("inf"), float("-inf"))):
            return f"{path}: float {v!r} is not JSON"
        if cls in _SCALARS:
            return None
        if cls is tuple or cls is list:
            for i, x in enumerate(v):
                if (got := self._find(x, f"{path}[{i}]")) is not None:
                    return got
            return None
        if cls is dict:
            for k, x in v.items():
                if k.__class__ is not str:
                    return (
                        f"{path}: a dict key of type {_name(k.__class__)} ({_short(k)}): JSON "
                        f"object keys are strings; use str keys, or define dump_{self.what} "
                        f"and load_{self.what}"
                    )
                if (got := self._find(x, f"{path}[{k!r}]")) is not None:
                    return got
            return None
        d = self._by_class.get(cls)
        if d is not None:
            for name, _ in d.fields:
                if (got := self._find(getattr(v, name), f"{path}.{name}")) is not None:
                    return got
            return None
        if dataclasses.is_dataclass(v):
            return (
                f"{path}: dataclass {_name(cls)} is not declared: name it in the process's "
                "Process[State, Answer] types or list it in its known_types"
            )
        return (
            f"{path}: {_name(cls)} is not JSON-able ({_SUPPORTED}); "
            f"define dump_{self.what} and load_{self.what}"
        )

    # -- reading ---------------------------------------------------------------------------
    def _dec(self, j: Any, spec: Spec) -> Any:
        cls = j.__class__
        if cls is list:
            if _CONTAINERS.isdisjoint(map(type, j)):  # scalars only, checked in C
                return tuple(j) if spec.array == _TUPLE else j
            if spec.array == _TUPLE:
                fixed = spec.fixed
                if fixed is not None and len(fixed) == len(j):
                    return tuple(map(self._dec, j, fixed))
                return tuple(map(self._dec, j, repeat(spec.item)))
            return list(map(self._dec, j, repeat(spec.item)))
        if cls is dict:
            if len(j) == 1:
                ((k, body),) = j.items()
                if k.startswith("#"):
                    return self._tagged(k, body, spec)
            if spec.obj == _DATACLASS:
                assert spec.dataclass is not None
                return self._make(spec.dataclass, j)
            val = spec.value
            return {k: self._dec(x, val) for k, x in j.items()}
        return j

    def _items(self, j: list[Any], item: Spec) -> list[Any]:
        if _CONTAINERS.isdisjoint(map(type, j)):
            return j
        return list(map(self._dec, j, repeat(item)))

    def _tagged(self, tag: str, body: Any, spec: Spec) -> Any:
        if tag in (TUPLE, LIST):
            if body.__class__ is not list:
                raise SerialError(
                    f"cannot read a {self.what}: {tag} tags a {_name(body.__class__)}"
                )
            items = self._items(body, spec.item)
            return tuple(items) if tag == TUPLE else list(items)
        if body.__class__ is not dict:
            raise SerialError(f"cannot read a {self.what}: {tag} tags a {_name(body.__class__)}")
        if tag == DICT:
            val = spec.value
            return {k: self._dec(x, val) for k, x in body.items()}
        d = self._by_tag.get(tag)
        if d is None:
            raise SerialError(
                f"cannot read a {self.what}: its text names {tag[1:]!r}, not a dataclass "
                "the process declares (the process changed, or the text is not its own)"
            )
        return self._make(d, body)

    def _make(self, d: _Dataclass, body: dict[str, Any]) -> Any:
        keys = body.keys()
        if not (d.required <= keys <= d.names):
            missing = sorted(d.required - keys)
            extra = sorted(keys - d.names)
            raise SerialError(
                f"cannot read a {self.what}: dataclass {d.cls.__qualname__} "
                + (f"needs {', '.join(missing)}" if missing else f"has no {', '.join(extra)}")
                + " (the dataclass changed since the text was written)"
            )
        kwargs = {name: self._dec(body[name], s) for name, s in d.fields if name in body}
        return d.cls(**kwargs)


def _name(cls: type) -> str:
    mod = cls.__module__
    return cls.__qualname__ if mod == "builtins" else f"{mod}.{cls.__qualname__}"


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


# -- declared types to specs -------------------------------------------------------------
def codecs(declared: Sequence[tuple[str, Any]], known: Iterable[type] = ()) -> list[ValueCodec]:
    """One codec per (what, declared type), e.g. a process's ("state", State) and
    ("answer", Answer), sharing the dataclasses any of them names or `known` lists."""
    seen: dict[type, _Dataclass] = {}
    specs = [(what, compile_type(t, seen)) for what, t in declared]
    for cls in known:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise SerialError(f"known_types lists {cls!r}, which is not a dataclass")
        compile_type(cls, seen)
    tags: dict[str, type] = {}
    for d in seen.values():
        other = tags.setdefault(d.tag, d.cls)
        if other is not d.cls:
            raise SerialError(
                f"two dataclasses are named {d.cls.__qualname__} ({_name(other)} and "
                f"{_name(d.cls)}): the text could not tell them apart; rename one"
            )
    return [ValueCodec(spec, seen.values(), what) for what, spec in specs]


def compile_type(tp: Any, seen: dict[type, _Dataclass]) -> Spec:
    """The spec of a declared type; dataclasses met on the way are added to `seen`."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return compile_type(get_args(tp)[0], seen)
    if hasattr(tp, "__supertype__"):  # a NewType
        return compile_type(tp.__supertype__, seen)
    if origin is Union or origin is types.UnionType:
        return _union([compile_type(a, seen) for a in get_args(tp)])
    if tp is tuple:
        return Spec(array=_TUPLE)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return Spec(array=_TUPLE, item=compile_type(args[0], seen))
        return Spec(array=_TUPLE, fixed=tuple(compile_type(a, seen) for a in args))
    if tp is list:
        return Spec(array=_LIST)
    if origin is list:
        return Spec(array=_LIST, item=compile_type(get_args(tp)[0], seen))
    if tp is dict or tp is Mapping:
        return Spec(obj=_DICT)
    if origin is dict or origin is Mapping:
        args = get_args(tp)
        return Spec(obj=_DICT, value=compile_type(args[1], seen) if len(args) == 2 else FREE)
    cls = origin if isinstance(origin, type) else tp  # a generic dataclass's alias: its class
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return Spec(obj=_DATACLASS, dataclass=_dataclass(cls, seen))
    return FREE  # Any, a TypeVar, a scalar, a name that did not resolve: JSON says it all


def _dataclass(cls: type, seen: dict[type, _Dataclass]) -> _Dataclass:
    got = seen.get(cls)
    if got is not None:
        return got
    d = seen[cls] = _Dataclass(cls)  # before its fields: a dataclass may contain itself
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a name its annotations use that does not resolve: undeclared places
        hints = {}
    init = [f for f in dataclasses.fields(cls) if f.init]
    d.fields = tuple((f.name, compile_type(hints.get(f.name, Any), seen)) for f in init)
    d.names = frozenset(f.name for f in init)
    d.required = frozenset(
        f.name
        for f in init
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return d


def _union(members: list[Spec]) -> Spec:
    """A union's place: its arrays and objects mean what its members agree they mean;
    where members disagree (a tuple and a list), values are tagged."""
    arrays = {_array_sig(m): m for m in members if m.array != _NONE}
    objs = {_obj_sig(m): m for m in members if m.obj != _NONE}
    a = next(iter(arrays.values())) if len(arrays) == 1 else FREE
    o = next(iter(objs.values())) if len(objs) == 1 else FREE
    if a is o:
        return a
    return Spec(a.array, a.fixed, a.item, o.obj, o.value, o.dataclass)


def _sig(s: Spec) -> tuple[Any, ...]:
    return (_array_sig(s), _obj_sig(s))


def _array_sig(s: Spec) -> tuple[Any, ...]:
    fixed = None if s.fixed is None else tuple(_sig(x) for x in s.fixed)
    return (s.array, fixed, None if s.item is FREE else _sig(s.item)) if s.array else ()


def _obj_sig(s: Spec) -> tuple[Any, ...]:
    if s.obj == _DATACLASS:
        assert s.dataclass is not None
        return (s.obj, s.dataclass.cls)  # a dataclass is itself: no recursion into it
    return (s.obj, None if s.value is FREE else _sig(s.value)) if s.obj else ()
