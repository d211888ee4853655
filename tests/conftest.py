"""Shared test helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import settings

T = TypeVar("T")

# property tests check behaviour, never speed: on a shared, loaded machine a case that
# takes 0.5 s once is not a failure (performance is measured in bench/)
settings.register_profile("unerring", deadline=None)
settings.load_profile("unerring")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
