"""unerring: long LLM processes that finish with zero errors.

The public names are imported on first use (PEP 562): a process that needs one module of
the package (a Ray worker, which needs the scheduler and not the runner) does not pay for
importing all of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unerring.api import run, run_batch
    from unerring.app.keywords import RunOptions
    from unerring.app.result import RunResult
    from unerring.app.tools import calibrate, learn_notes
    from unerring.core.flags import Flag
    from unerring.errors import (
        FatalBackendError,
        GraphError,
        MissingExtra,
        OutageError,
        OutputError,
        RetriesExhausted,
        StoreBusy,
        StoreError,
        StoreRefused,
        TransportError,
        UnerringError,
        UsageError,
    )
    from unerring.executors import ExecutorSpec
    from unerring.graph import Graph, Memory, Node
    from unerring.process import Answer, Process
    from unerring.voting.ahead_by_k import Tally
    from unerring.voting.config import Budget

from unerring._version import __version__

_WHERE = {
    "Answer": "unerring.process",
    "Budget": "unerring.voting.config",
    "ExecutorSpec": "unerring.executors",
    "FatalBackendError": "unerring.errors",
    "Flag": "unerring.core.flags",
    "Graph": "unerring.graph",
    "GraphError": "unerring.errors",
    "Memory": "unerring.graph",
    "MissingExtra": "unerring.errors",
    "Node": "unerring.graph",
    "OutageError": "unerring.errors",
    "OutputError": "unerring.errors",
    "Process": "unerring.process",
    "RetriesExhausted": "unerring.errors",
    "RunOptions": "unerring.app.keywords",
    "RunResult": "unerring.app.result",
    "StoreBusy": "unerring.errors",
    "StoreError": "unerring.errors",
    "StoreRefused": "unerring.errors",
    "Tally": "unerring.voting.ahead_by_k",
    "TransportError": "unerring.errors",
    "UnerringError": "unerring.errors",
    "UsageError": "unerring.errors",
    "calibrate": "unerring.app.tools",
    "learn_notes": "unerring.app.tools",
    "run": "unerring.api",
    "run_batch": "unerring.api",
}

__all__ = [
    "Answer",
    "Budget",
    "ExecutorSpec",
    "FatalBackendError",
    "Flag",
    "Graph",
    "GraphError",
    "Memory",
    "MissingExtra",
    "Node",
    "OutageError",
    "OutputError",
    "Process",
    "RetriesExhausted",
    "RunOptions",
    "RunResult",
    "StoreBusy",
    "StoreError",
    "StoreRefused",
    "Tally",
    "TransportError",
    "UnerringError",
    "UsageError",
    "__version__",
    "calibrate",
    "learn_notes",
    "run",
    "run_batch",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'unerring' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # once found, an attribute like any other
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
