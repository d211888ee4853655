"""unerring: long LLM processes that finish with zero errors."""

from unerring.api import run, run_batch
from unerring.executors import ExecutorSpec
from unerring.graph import Graph, Memory, Node
from unerring.process import Answer, Process
from unerring.redflags import Flag
from unerring.runner import RunResult
from unerring.settings import Budget
from unerring.voting import Tally

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Budget",
    "ExecutorSpec",
    "Flag",
    "Graph",
    "Memory",
    "Node",
    "Process",
    "RunResult",
    "Tally",
    "__version__",
    "run",
    "run_batch",
]
