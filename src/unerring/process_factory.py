"""Where a run's processes come from: a factory the caller hands in.

The library runs processes and never knows where they were defined: the CLI makes a
factory from a task name (or from a journal's record, to resume or analyse a run), a
library user from their own objects. What the journal records of a run (its task's name
and options, each item's options) is all a resolver needs to make the factory again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from unerring.errors import UsageError
from unerring.graph import Graph
from unerring.process import Process

Made = Process[Any, Any] | Graph


class ProcessFactory(Protocol):
    """Makes a run's processes: given an item's options, its process (or the run's graph)."""

    @property
    def name(self) -> str:
        """The run's task, as the journal records it."""
        ...

    @property
    def options(self) -> Mapping[str, Any]:
        """The run's options, recorded with it (an item's own options go on top)."""
        ...

    def make(self, options: Mapping[str, Any], item_id: str | None = None) -> Made:
        """The process of an item with these options (`item_id`: which item, for a factory
        of objects; None: the run's own process or graph)."""
        ...


# a journaled run's factory, from its task and its recorded configuration (its
# `task_options` among them); raises UsageError when the task cannot be made here
FactoryResolver = Callable[[str, Mapping[str, Any]], ProcessFactory]


@dataclass(frozen=True)
class OwnProcesses:
    """The user's own objects: one process or graph (item "1"), or a batch by item id."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    objects: Mapping[str, Made] = field(default_factory=dict)

    @classmethod
    def of(cls, made: Made) -> OwnProcesses:
        """A run of one process or graph, named and optioned as it says."""
        return cls(made.name, dict(made.options()), {"1": made})

    def make(self, options: Mapping[str, Any], item_id: str | None = None) -> Made:
        got = self.objects.get("1" if item_id is None else item_id)
        if got is None:
            raise UsageError(
                f"item {item_id!r} of run {self.name!r} has no process here: resuming a batch "
                "of your own processes needs the same batch"
            )
        return got


def short_name(task: str) -> str:
    """A task's name as a run id or notebook name may hold it: a reference's class
    (`path/to/file.py:Count` is `Count`), letters, digits, '_', '.' and '-' only."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", task.rpartition(":")[2])[:64]
    cleaned = cleaned.lstrip("_.-")
    return cleaned or "process"
