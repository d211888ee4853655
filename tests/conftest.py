"""Shared test helpers, and every test's working directory: a fresh empty folder, so
that the library's default store (.unerring/runs.db, in the current directory) never
lands in the repository checkout."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import settings

T = TypeVar("T")

# property tests check behaviour, never speed: on a shared, loaded machine a case that
# takes 0.5 s once is not a failure (performance is measured in bench/)
settings.register_profile("unerring", deadline=None)
settings.load_profile("unerring")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(autouse=True)
def _in_an_empty_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
