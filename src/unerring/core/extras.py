"""Optional extras (`pip install 'unerring[NAME]'`): import one, or say in one line how to."""

from __future__ import annotations

import importlib
from types import ModuleType

from unerring.errors import MissingExtra

__all__ = ["MissingExtra", "require"]


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise MissingExtra naming `what` needs it and the extra to add."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingExtra(
            f"{what} needs {package}, which is not installed: pip install 'unerring[{extra}]'"
        ) from None
