"""A user's own process or graph, loaded by reference: `path/to/file.py:ClassName` or
`package.module:ClassName`, its constructor's keyword arguments given with the run.

The journal records the reference as given and, for a file, its absolute path (so that a
resume from another folder finds it), in the run's configuration (`task_source`); the
run's arguments are its `task_options`, each item's its options. That record is all
`user_processes_of` needs to make the processes again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from unerring.errors import UsageError
from unerring.graph import Graph
from unerring.process import Process

Made = Process[Any, Any] | Graph


def is_reference(task: str) -> bool:
    """A task given as `FILE.py:Class` or `module:Class` (a built-in task has no ':')."""
    return ":" in task


@dataclass(frozen=True)
class Reference:
    """Where a user's class lives: a file (`path` absolute) or a module, and its name."""

    text: str  # as given
    target: str  # the file or module part
    attr: str  # the class, possibly dotted (`Outer.Inner`)
    path: str | None  # a file's absolute path; None for a module

    @classmethod
    def parse(cls, text: str, path: str | None = None) -> Reference:
        target, _, attr = text.rpartition(":")
        if not target or not attr:
            raise UsageError(f"{text!r} is not a reference: give FILE.py:Class or module:Class")
        if path is None and _is_file(target):
            path = str(Path(target).expanduser().resolve())
        return cls(text, target, attr, path)

    @property
    def source(self) -> dict[str, str]:
        """What the journal records of it (`task_source`)."""
        out = {"reference": self.text}
        if self.path is not None:
            out["path"] = self.path
        return out


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def _module_of_file(ref: Reference) -> ModuleType:
    assert ref.path is not None
    path = Path(ref.path)
    if not path.is_file():
        raise UsageError(f"{ref.text}: no such file {ref.path}")
    # one module name per file, so that two files of the same name do not collide and
    # the classes pickle (sys.modules holds it)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"unerring_user_{_identifier(path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{ref.text}: {ref.path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        del sys.modules[name]
        raise UsageError(
            f"{ref.text}: syntax error in {ref.path} line {e.lineno}: {e.msg}"
        ) from None
    except BaseException as e:
        del sys.modules[name]
        if isinstance(e, KeyboardInterrupt):
            raise
        raise UsageError(f"{ref.text}: importing {ref.path} raised {_one_line(e)}") from None
    return module


def _module_of_name(ref: Reference) -> ModuleType:
    here = os.getcwd()
    if here not in sys.path:  # as `python -m` does: a module beside the user is found
        sys.path.insert(0, here)
    try:
        return importlib.import_module(ref.target)
    except ModuleNotFoundError as e:
        raise UsageError(f"{ref.text}: no module named {e.name or ref.target!r}") from None
    except SyntaxError as e:
        raise UsageError(
            f"{ref.text}: syntax error in {e.filename} line {e.lineno}: {e.msg}"
        ) from None
    except Exception as e:
        raise UsageError(f"{ref.text}: importing {ref.target} raised {_one_line(e)}") from None


def load_class(ref: Reference) -> type[Any]:
    """The class a reference names, imported; a Process or Graph subclass, else refused."""
    module = _module_of_file(ref) if ref.path is not None else _module_of_name(ref)
    got: Any = module
    for part in ref.attr.split("."):
        got = getattr(got, part, None)
        if got is None:
            where = ref.path or ref.target
            raise UsageError(f"{ref.text}: {where} defines no {ref.attr!r}")
    if not isinstance(got, type) or not issubclass(got, Process | Graph):
        raise UsageError(
            f"{ref.text}: {ref.attr} is not a subclass of unerring.Process or unerring.Graph"
        )
    return got


def check_arguments(
    cls: type[Any], names: Mapping[str, Any], ref: str, where: str | None = None
) -> None:
    """Refuse a keyword the constructor does not take, naming it (`where`: the flag or
    the items line it came from)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # a signature Python cannot read: the call will tell
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    takes = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    for name in names:
        if name not in takes:
            at = f"{where}: " if where else ""
            raise UsageError(
                f"{at}{ref} takes no argument {name!r} (takes: {', '.join(takes) or 'none'})"
            )


@dataclass(frozen=True)
class UserProcesses:
    """A ProcessFactory of a user's class: the run's arguments, an item's on top."""

    ref: Reference
    cls: type[Any]
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.ref.text

    @property
    def source(self) -> Mapping[str, str]:
        """Recorded with the run (`task_source`): where the class is found again."""
        return self.ref.source

    def make(self, options: Mapping[str, Any], item_id: str | None = None) -> Made:
        given = {**self.options, **options}
        check_arguments(self.cls, given, self.ref.text)
        try:
            made = self.cls(**given)
        except Exception as e:
            args = ", ".join(f"{k}={_short(v)}" for k, v in given.items())
            raise UsageError(
                f"{self.ref.text}: {self.cls.__name__}({args}) raised {_one_line(e)}"
            ) from None
        if not isinstance(made, Process | Graph):  # a __new__ that returns something else
            raise UsageError(f"{self.ref.text}: {self.cls.__name__}() made no Process or Graph")
        return made


def user_processes(text: str, arguments: Mapping[str, Any] | None = None) -> UserProcesses:
    """The factory of a reference as given on the command line (imported now: a class
    that is not there is refused before anything is written)."""
    ref = Reference.parse(text)
    cls = load_class(ref)
    given = dict(arguments or {})
    check_arguments(cls, given, ref.text, "--set")
    return UserProcesses(ref, cls, given)


def user_processes_of(task: str, config: Mapping[str, Any]) -> UserProcesses:
    """A journaled run's factory, from the source and arguments it recorded."""
    source = config.get("task_source") or {}
    ref = Reference.parse(str(source.get("reference", task)), source.get("path"))
    return UserProcesses(ref, load_class(ref), dict(config.get("task_options", {})))


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _short(value: Any, limit: int = 30) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
