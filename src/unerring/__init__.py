"""unerring: long LLM processes that finish with zero errors."""

from unerring.api import run
from unerring.engine import Budget
from unerring.process import Answer, Process
from unerring.redflags import Flag
from unerring.runner import RunResult
from unerring.voting import Tally

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Budget",
    "Flag",
    "Process",
    "RunResult",
    "Tally",
    "__version__",
    "run",
]
