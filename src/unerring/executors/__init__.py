"""Executors decide only where a run's work runs: in this process (`local`), or spread
over Ray actors (`ray`). The journal, the budget and the events stay in the driver.

This package's root picks the implementation a spec names; `base` holds what they share
and imports none of them.
"""

from unerring.executors.base import EXECUTORS, Execution, Executor, ExecutorSpec, Notify
from unerring.executors.local import LocalExecutor
from unerring.scheduler.build import Work

__all__ = ["EXECUTORS", "Execution", "Executor", "ExecutorSpec", "Work", "open_executor"]


def open_executor(spec: ExecutorSpec, notify: Notify | None = None) -> Executor:
    """The executor a spec names, connected (Ray: a cluster found or started)."""
    spec.check()
    if spec.kind == "ray":
        # imported here: Ray is an optional extra, and a local run never needs it
        from unerring.executors.ray import RayExecutor

        return RayExecutor(spec, notify)
    return LocalExecutor()
