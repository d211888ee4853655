"""Journals for the report's tests: one whose model answers with hostile text."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.helpers import config
from unerring.app.recorded import recorded
from unerring.backends.sim import ProcessOracle, SimBackend, SimConfig
from unerring.core.events import Events
from unerring.core.samples import Sample, SampleRequest
from unerring.journal.store import Store
from unerring.journal.writer import JournalWriter
from unerring.scheduler.loop import Scheduler
from unerring.scheduler.sources import Item
from unerring.tasks.hanoi import Hanoi
from unerring.tasks.registry import task_processes
from unerring.voting.config import VotingConfig

CANARY = "CANARY"
SCRIPT = f"<script>console.error('{CANARY}')</script>"
IMG = f"<img src=x onerror=\"console.error('{CANARY}')\">"
HOSTILE = (
    SCRIPT,
    IMG,
    f"\x1b[2J\x1b]0;owned\x07 \x00\x01 \u202e reversed </pre></td></table>{SCRIPT}",
    "B" * 1_000_000 + SCRIPT,
)


class HostileModel:
    """The simulated model, except that on some steps the first samples are hostile."""

    batch_rounds = False  # one request per sample

    def __init__(self) -> None:
        self.inner = SimBackend(SimConfig.parse("error=0.0,seed=1"))

    @property
    def model(self) -> str:
        return "sim"

    async def sample(self, request: SampleRequest) -> list[Sample]:
        out = await self.inner.sample(request)
        if request.step % 3 != 1:
            return out
        return [
            Sample(HOSTILE[(index + request.step) % len(HOSTILE)], s.prompt_tokens, None)
            if index < 2
            else s
            for index, s in enumerate(out, request.first_index)
        ]

    async def aclose(self) -> None:
        return None


def hostile_journal(db: Path, run_id: str = "hostile") -> Path:
    """A completed 5-disk Hanoi run whose journal holds hostile samples (flagged ones)."""
    store = Store(str(db))
    process = Hanoi(5)
    options = recorded(
        config(model="sim:error=0.0,seed=1", k=2), task_processes("hanoi", {"disks": 5})
    )
    run = store.create_run(run_id, "hanoi", {**options, "k_resolved": 2}, 31)
    attempt = store.begin_attempt(run)
    writer = JournalWriter(store, run, durability="sync")
    events = Events()
    events.subscribe(writer)
    sched = Scheduler(HostileModel(), VotingConfig(k=2), events, oracle=ProcessOracle)
    outcome = asyncio.run(sched.run([Item(0, process, process.initial_state())]))
    writer.close()
    store.end_attempt(run, attempt, outcome.status, outcome.reason)
    assert outcome.status == "completed", outcome.reason
    store.close()
    return db
