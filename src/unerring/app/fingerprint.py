"""How a run's processes were constructed, recorded with it so that a resume with other
processes is refused by name even where a process defines no `options()`.

A process's construction is its `options()` where it defines non-empty ones, else the
arguments it was made with where the factory knows them, else its public instance fields
(`vars(obj)`, names not starting with `_`: a cache filled while running is no part of
it), made JSON-able. A run records the construction itself when it is short, else its
SHA-256 (`sha256:...`); a journal that recorded none resumes as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from unerring.graph import Graph
from unerring.process import Process

# a recorded construction longer than this (as JSON) is recorded as its hash
SHOWN = 400
_DEPTH = 6


def construction(made: Process[Any, Any] | Graph, known: Mapping[str, Any]) -> dict[str, Any]:
    """One process's (or graph's) construction, JSON-able (`known`: the arguments it was
    made with, where the factory knows them)."""
    try:
        options = dict(made.options())
    except Exception:  # a process whose options() fails: its fields say what it is
        options = {}
    if options:
        return {"options": plain(options)}
    if known:
        return {"arguments": plain(dict(known))}
    return {"fields": _fields(made, 0)}


def recorded(value: Any) -> Any:
    """What a run records of a construction: itself if short, else its hash."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) <= SHOWN:
        return json.loads(text)  # as the journal gives it back (tuples are lists)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def batch(parts: Sequence[tuple[str, dict[str, Any]]]) -> Any:
    """A batch's construction: each item's, by id, hashed as one unless short."""
    return recorded({item_id: c for item_id, c in parts})


def plain(value: Any, depth: int = 0) -> Any:
    """`value` as JSON (sorted, deterministic): containers and dataclasses by their
    contents, other objects by their public fields, what has none by its type's name
    (never a repr that holds a memory address)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > _DEPTH:
        return _type_name(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [plain(v, depth + 1) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, type):
        return _type_name(value)
    if dataclasses.is_dataclass(value):
        return {
            f.name: plain(getattr(value, f.name, None), depth + 1)
            for f in dataclasses.fields(value)
        }
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if hasattr(value, "__dict__") and not callable(value):
        return {"__type__": _type_name(type(value)), **_fields(value, depth + 1)}
    return _type_name(type(value) if not callable(value) else value)


def _fields(obj: object, depth: int) -> dict[str, Any]:
    try:
        own = vars(obj)
    except TypeError:  # __slots__ only
        own = {n: getattr(obj, n) for n in getattr(type(obj), "__slots__", ()) if hasattr(obj, n)}
    return {k: plain(v, depth) for k, v in sorted(own.items()) if not k.startswith("_")}


def _type_name(value: Any) -> str:
    module = getattr(value, "__module__", None) or ""
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    return f"{module}.{name}" if module else str(name)
