"""Executors decide only where a run's work runs: in this process (`local`), or spread
over Ray actors (`ray`). The journal, the budget and the events stay in the driver."""

from unerring.executors.base import EXECUTORS, Execution, Executor, ExecutorSpec, open_executor
from unerring.scheduler.build import Work

__all__ = ["EXECUTORS", "Execution", "Executor", "ExecutorSpec", "Work", "open_executor"]
