"""The built-in processes the CLI can run, with their options, and the process factory
the CLI hands the library for them (the library itself knows no task by name)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from unerring.errors import UsageError
from unerring.graph import Graph
from unerring.process import Process
from unerring.tasks.addition import Addition
from unerring.tasks.hanoi import Hanoi
from unerring.tasks.multiply import Multiply
from unerring.tasks.sort import Sort
from unerring.tasks.sums import PairwiseSum
from unerring.tasks.user import UserProcesses, user_processes_of


@dataclass(frozen=True, slots=True)
class TaskOption:
    """A task option as the CLI shows it: `--disks N`."""

    name: str  # python name; the flag is --name with dashes
    type: type
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    summary: str
    options: tuple[TaskOption, ...]
    build: Callable[..., Process[Any, Any] | Graph]

    def make(self, options: Mapping[str, Any]) -> Any:
        """The task's process (a chain) or graph, for these options."""
        return self.build(**{o.name: options.get(o.name, o.default) for o in self.options})


TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "hanoi": TaskSpec(
            "hanoi",
            "Towers of Hanoi: move N disks from peg 0 to peg 2, one voted move per step",
            (TaskOption("disks", int, 10, "number of disks (2^N - 1 steps)"),),
            Hanoi,
        ),
        "addition": TaskSpec(
            "addition",
            "long addition of two N-digit numbers, one two-number sum per step",
            (
                TaskOption("digits", int, 100, "digits per operand"),
                TaskOption("max_digit", int, 9, "largest digit in the operands (1-9)"),
                TaskOption("seed", int, 0, "seed that draws the operands"),
            ),
            Addition,
        ),
        "multiply": TaskSpec(
            "multiply",
            "long multiplication of two N-digit numbers as a graph: partial products side "
            "by side, then a tree of sums",
            (
                TaskOption("digits", int, 4, "digits per operand"),
                TaskOption("max_digit", int, 9, "largest digit in the operands (1-9)"),
                TaskOption("seed", int, 0, "seed that draws the operands"),
            ),
            Multiply,
        ),
        "sort": TaskSpec(
            "sort",
            "merge sort of N numbers as a graph that the model splits (voted) and merges",
            (
                TaskOption("numbers", int, 8, "how many numbers to sort"),
                TaskOption("seed", int, 0, "seed that draws the numbers"),
                TaskOption("max_value", int, 99, "largest number"),
            ),
            Sort,
        ),
        "sum": TaskSpec(
            "sum",
            "the sum of N numbers as a tree of voted pairwise sums, its nodes a stream "
            "(a run holds its frontier, not its N - 1 nodes)",
            (
                TaskOption("numbers", int, 1000, "how many numbers to add (N - 1 nodes)"),
                TaskOption("seed", int, 0, "seed that draws the numbers"),
                TaskOption("max_value", int, 99, "largest number"),
            ),
            PairwiseSum,
        ),
    }
)


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})") from None


@dataclass(frozen=True)
class TaskProcesses:
    """A built-in task's processes (a ProcessFactory): the run's options, an item's on top."""

    spec: TaskSpec
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def make(self, options: Mapping[str, Any], item_id: str | None = None) -> Any:
        try:
            return self.spec.make({**self.options, **options})
        except UsageError:
            raise
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None


def task_processes(name: str, options: Mapping[str, Any] | None = None) -> TaskProcesses:
    """The processes of the built-in task `name`, each option at its default unless given."""
    spec = get_task(name)
    given = dict(options or {})
    return TaskProcesses(spec, {o.name: given.get(o.name, o.default) for o in spec.options})


def resolve(task: str, config: Mapping[str, Any]) -> TaskProcesses | UserProcesses:
    """A journaled run's processes, from its task and recorded configuration (a
    FactoryResolver: the CLI hands it to resume and to analysis): a built-in task's, or a
    user's class found again where the run recorded it (`FILE.py:Class`)."""
    if "task_source" in config:
        return user_processes_of(task, config)
    return TaskProcesses(get_task(task), dict(config.get("task_options", {})))
