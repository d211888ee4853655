"""One exception base: every error unerring raises on purpose is an UnerringError, each
kind is exported from `unerring`, and errors.py imports nothing of unerring's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import unerring
from unerring import errors

KINDS = [
    "UsageError",
    "GraphError",
    "OutputError",
    "MissingExtra",
    "StoreError",
    "StoreRefused",
    "StoreBusy",
    "TransportError",
    "FatalBackendError",
    "OutageError",
    "RetriesExhausted",
]


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_is_an_unerring_error_exported_from_the_package(name: str) -> None:
    kind = getattr(unerring, name)
    assert kind is getattr(errors, name)
    assert issubclass(kind, unerring.UnerringError)
    assert name in unerring.__all__


def test_the_tree_is_as_drawn() -> None:
    assert issubclass(errors.StoreRefused, errors.StoreError)
    assert issubclass(errors.StoreBusy, errors.StoreError)
    for kind in (errors.FatalBackendError, errors.OutageError, errors.RetriesExhausted):
        assert issubclass(kind, errors.TransportError)
    # the kinds that were ValueError and ImportError before the base stay so
    assert issubclass(errors.UsageError, ValueError)
    assert issubclass(errors.GraphError, ValueError)
    assert issubclass(errors.MissingExtra, ImportError)


def test_the_modules_that_raised_them_still_name_the_same_classes() -> None:
    from unerring.backends.base import FatalBackendError, TransportError
    from unerring.backends.resilience import OutageError, RetriesExhausted
    from unerring.core.extras import MissingExtra
    from unerring.graph import GraphError
    from unerring.journal.store import StoreBusy, StoreError, StoreRefused
    from unerring.reporting.files import OutputError

    assert (FatalBackendError, TransportError, OutageError, RetriesExhausted) == (
        errors.FatalBackendError,
        errors.TransportError,
        errors.OutageError,
        errors.RetriesExhausted,
    )
    assert (StoreBusy, StoreError, StoreRefused) == (
        errors.StoreBusy,
        errors.StoreError,
        errors.StoreRefused,
    )
    assert (MissingExtra, GraphError, OutputError) == (
        errors.MissingExtra,
        errors.GraphError,
        errors.OutputError,
    )


def test_errors_imports_nothing_of_unerring() -> None:
    # every layer raises these: an import of ours here would close a cycle
    tree = ast.parse(Path(errors.__file__).read_text(encoding="utf-8"))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    ]
    assert not [m for m in imported if m.startswith("unerring")]


def test_a_usage_error_names_its_parameters_as_the_library_or_the_cli_spells_them() -> None:
    e = errors.UsageError("give {k}, or {error_rate} measured", params=("k", "error_rate"))
    assert str(e) == "give k, or error_rate measured" and e.params == ("k", "error_rate")
    flags = {"k": "--k", "error_rate": "--error-rate"}
    assert e.spelt(flags.__getitem__) == "give --k, or --error-rate measured"
    # braces in a message without parameters (a JSON value) stay as they are
    plain = errors.UsageError("bad item {}")
    assert str(plain) == "bad item {}" and plain.spelt(str.upper) == "bad item {}"
