"""The Ray executor: a batch's items (a graph's ready nodes) spread over Ray actors, one
journal in the driver.

Each actor runs a `Worker` (executors/worker.py): a scheduler with its own backend and its
share of the limits (`base.shares`), over the items the driver hands it. The driver talks
to each actor through one call, `exchange`, always one outstanding per actor: it carries
items (or a stop, or the end of the items) out and brings back a commit group of what the
actor decided since the last call. The driver hands the group to its journal writer (one
journal, group commit as with the local executor) and adds its totals to the run's.

- Budget: held by the driver, checked against the run's totals after every group it
  receives (every 20 ms or so per actor); when reached, every actor is told to stop. A
  run may spend what its actors decide in one exchange beyond it, where the local
  executor stops at the step.
- Faults: Ray calls are at-most-once and an actor restarts from its constructor, so the
  journal and the driver's view are the truth. The driver keeps, for each item an actor
  holds, the state of its last decision received. When an actor dies (its process killed),
  a new one takes its unfinished items from there: the steps that were in flight on the
  dead one are drawn again (the same seeds, so the same samples and decisions), nothing it
  decided is journaled twice (only an item's current actor speaks for it), and the driver
  reports the restart and the samples drawn again (at least those in flight at the dead
  actor's last report).
- A driver that dies takes its actors with it (Ray ends an owner's actors): resume.
- Graphs: the task tree stays in the driver. Its ready nodes are handed out as items (each
  with the process the tree built for it); a node's end, reported by its actor, goes to the
  tree, which turns it into the node's output and makes its dependents and children ready,
  to be handed out in turn. The items run out only when no node is ready and none is held
  by any actor.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from unerring.backends.base import Backend
from unerring.backends.factory import Transport
from unerring.core.events import Events, ItemEnd, ItemStart
from unerring.core.totals import Totals
from unerring.errors import UsageError
from unerring.executors.base import ExecutorSpec, Notify, default_workers, shares
from unerring.executors.worker import Report, Worker
from unerring.scheduler.build import Work
from unerring.scheduler.loop import KEEP_ENDS
from unerring.scheduler.sources import Item, RunEnd, Source, run_end

INSTALL = "pip install 'unerring[ray]'"
POLL_S = 0.2  # the longest an exchange waits when its actor has nothing to report
TICK_S = 0.05  # how often the driver looks up from waiting (a stop asked by a signal)
START_S = 120.0  # the longest a worker may take to answer its first call (a busy cluster)


def import_ray(local: bool) -> Any:
    """Ray, imported on first use (an optional extra)."""
    if local and "ray" not in sys.modules:
        # a cluster started here listens on the loopback address only: on Linux Ray swaps
        # 127.0.0.1 for the machine's address unless this is set before Ray is imported
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise UsageError(f"the ray executor needs Ray, which is not installed: {INSTALL}") from None


def check_address(address: str) -> None:
    """Refuse an address that is not HOST:PORT, or where nothing answers, in one line."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise UsageError(
            f"address {address!r} is not HOST:PORT (the address `ray start --head` prints)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3.0):
            pass
    except OSError as e:
        raise UsageError(
            f"address {address}: no Ray cluster answers there ({e.strerror or e})"
        ) from None


def _route_errors() -> None:
    """Ray prints the cluster's error messages on the driver's stdout, where `--json`
    writes its summary: send them to stderr, and leave out a worker's death, which the
    driver reports in its own words. (Ray's module function, replaced where it is looked
    up; if a Ray version moves it, its messages stay as they were.)"""
    mod = sys.modules.get("ray._private.worker")
    original = getattr(mod, "print_to_stdstream", None)
    if mod is None or original is None or getattr(original, "_unerring", False):
        return

    def routed(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") == "raylet":
            if any("worker died" in str(line) for line in data.get("lines", ())):
                return
            data = {**data, "is_err": True}
        original(data, ignore_prefix)

    routed._unerring = True  # type: ignore[attr-defined]
    mod.print_to_stdstream = routed  # type: ignore[attr-defined]


class RayExecutor:
    """Connects to a Ray cluster (or starts one on this machine) and runs items on it."""

    def __init__(self, spec: ExecutorSpec, notify: Notify | None = None) -> None:
        if spec.address is not None:
            check_address(spec.address)
        ray = import_ray(local=spec.address is None)
        self.ray = ray
        self.notify = notify
        self.started = False
        if not ray.is_initialized():
            quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
            try:
                if spec.address is None:
                    cpus = max(spec.workers or 0, default_workers())
                    ray.init(
                        address="local",
                        num_cpus=cpus,
                        include_dashboard=False,
                        _node_ip_address="127.0.0.1",
                        **quiet,
                    )
                else:
                    ray.init(address=spec.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as e:
                text = " ".join(str(e).split())
                raise UsageError(f"Ray could not start or connect: {text}") from None
            self.started = True
            _route_errors()
        self.cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = spec.workers or max(1, self.cpus)

    def check(self, transport: Transport) -> None:
        c = transport.concurrency
        if c is not None and c < self.workers:
            raise UsageError(
                f"concurrency {c} is below workers {self.workers}: each worker needs at "
                "least one request in flight; raise concurrency or lower workers"
            )

    def start(
        self,
        work: Work,
        events: Events,
        totals: Totals,
        wrap: Callable[[Backend], Backend] | None = None,
    ) -> RayExecution:
        # (a traced backend lives in the driver's process: workers' requests are not traced)
        return RayExecution(self.ray, work, events, totals, self.workers, self.cpus, self.notify)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


class _Slot:
    """One worker place: its actor (replaced if it dies), the items it holds, and its call."""

    __slots__ = (
        "actor",
        "closed",
        "done",
        "in_flight",
        "index",
        "owned",
        "pending",
        "rehand",
        "since",
        "started",
        "stop_sent",
        "unreported",
        "unreported_tokens",
        "work",
    )

    def __init__(self, index: int, work: Work) -> None:
        self.index = index
        self.work = work
        self.actor: Any = None
        self.pending: Any = None  # the outstanding exchange
        self.owned: dict[int, Item] = {}  # items handed and not ended, as last received
        self.rehand: list[Item] = []  # items to hand (again) with the next exchange
        self.closed = False
        self.stop_sent = False
        self.started = False  # its actor has answered once
        self.since = 0.0  # when its actor was made
        self.done = False
        self.in_flight = 0
        self.unreported = 0
        self.unreported_tokens = 0


class RayExecution:
    """The driver's side of a run on Ray (an Execution)."""

    def __init__(
        self,
        ray: Any,
        work: Work,
        events: Events,
        totals: Totals,
        workers: int,
        cpus: int,
        notify: Notify | None,
    ) -> None:
        self.ray = ray
        self.work = work
        self.events = events
        self.totals = totals
        self.ended: dict[str, int] = {"completed": 0, "stopped": 0, "failed": 0}
        self.notify = notify
        self.stop_reason: str | None = None
        self.failure: str | None = None
        self.restarts = 0
        self.redrawn_samples = 0
        self.redrawn_tokens = 0
        self.worker_cpu_s = 0.0
        self.max_restarts = max(3, 2 * workers)
        self._not_completed: list[ItemEnd] = []
        self._last_end: ItemEnd | None = None
        self._slots = [_Slot(i, w) for i, w in enumerate(shares(work, workers))]
        self._remote = ray.remote(Worker).options(
            num_cpus=1 if workers <= cpus else 0, scheduling_strategy="SPREAD"
        )
        self._items: Source | None = None
        self._exhausted = False
        self._cancel_at: float | None = None  # when the actors cancel what is pending

    # -- the view ---------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self._slots)

    def not_completed(self) -> tuple[ItemEnd, ...]:
        return tuple(self._not_completed)

    def request_stop(self, reason: str, cancel_after: float | None = None) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if cancel_after is not None:
            # a deadline on the driver's clock; each later exchange carries what is left
            at = time.monotonic() + max(0.0, cancel_after)
            self._cancel_at = at if self._cancel_at is None else min(self._cancel_at, at)

    def report(self) -> dict[str, Any]:
        return {
            "executor": "ray",
            "workers": len(self._slots),
            "worker_restarts": self.restarts,
            "redrawn_samples": self.redrawn_samples,
            "redrawn_tokens": self.redrawn_tokens,
            "worker_cpu_s": round(self.worker_cpu_s, 3),
        }

    def worker_pids(self) -> list[int]:
        """The process of each live actor (tests kill one)."""
        ray = self.ray
        live = [s.actor for s in self._slots if s.actor is not None and not s.done]
        return [int(p) for p in ray.get([a.pid.remote() for a in live], timeout=30)]

    # -- the run ----------------------------------------------------------------------------
    def run(self, items: Source) -> RunEnd:
        ray = self.ray
        self._items = items  # a batch's items in order, or a graph's ready nodes
        slots = self._slots
        try:
            for s in slots:
                s.actor = self._remote.remote(s.work)
                s.since = time.monotonic()
            self._deal(slots)
            for s in slots:
                self._send(s)
            while not all(s.done for s in slots):
                self._not_started(slots)
                calls = {s.pending: s for s in slots if s.pending is not None}
                ready, _ = ray.wait(list(calls), num_returns=1, timeout=TICK_S)
                for ref in ready:
                    s = calls[ref]
                    s.pending = None
                    try:
                        rep = ray.get(ref)
                    except ray.exceptions.RayActorError as e:
                        self._died(s, e)
                    except ray.exceptions.RayTaskError as e:
                        self._failed(s, e)
                    else:
                        self._take(s, rep)
                budget = self.work.budget
                if budget.active and self.stop_reason is None:
                    reason = budget.reached(self.totals)
                    if reason is not None:
                        self.request_stop(reason)
                for s in slots:
                    if s.pending is None and not s.done:
                        self._send(s)
        finally:
            for s in slots:
                if s.actor is not None:
                    ray.kill(s.actor, no_restart=True)
                    s.actor = None
        return run_end(
            self.ended,
            tuple(self._not_completed),
            self._last_end,
            self.failure,
            self.stop_reason,
        )

    def _send(self, s: _Slot) -> None:
        """The slot's next exchange: items to hand, a stop, or the end of the items."""
        items = s.rehand
        s.rehand = []
        stop = None
        if self.stop_reason is not None:
            if not s.stop_sent:
                stop = self.stop_reason
                s.stop_sent = True
            items = []  # handed after a stop: never started, left for a resume
        else:
            for _ in range(2 * s.work.items_window - len(s.owned)):
                it = self._next(s)
                if it is None:
                    break
                items.append(it)
        close = self._exhausted and not s.closed
        if close:
            s.closed = True
        cancel_after = None
        if self._cancel_at is not None:
            cancel_after = max(0.0, self._cancel_at - time.monotonic())
        # the actor gets its own copies (pickled): the driver's stay as last received
        s.pending = s.actor.exchange.remote(items, stop, close, POLL_S, cancel_after)

    def _next(self, s: _Slot) -> Item | None:
        """The next item for slot `s` (now its owner), or None when there is none now."""
        if self._exhausted:
            return None
        assert self._items is not None
        it = self._items.take()
        if it is None:
            # a graph's next nodes come from the ends of those held by the actors: the
            # items have run out only when no actor holds one
            if not any(x.owned for x in self._slots):
                self._exhausted = True
            return None
        s.owned[it.index] = it
        ship_by_value(it.process)
        # the driver's journal writer keeps the item's process (for its resume points)
        # until the item's end is committed; an actor's own scheduler tells its worker
        starts = self.events.item_start
        if starts:
            x = ItemStart(it.index, it.item_id, it.process)
            for fn in starts:
                fn(x)
        return it

    def _deal(self, slots: list[_Slot]) -> None:
        """The first items, one to each worker in turn (a small batch is spread evenly);
        later each worker is topped up as it reports."""
        want = {s.index: 2 * s.work.items_window for s in slots}
        while not self._exhausted and any(want.values()):
            for s in slots:
                if want[s.index]:
                    it = self._next(s)
                    if it is None:
                        return
                    s.rehand.append(it)
                    want[s.index] -= 1

    def _take(self, s: _Slot, rep: Report) -> None:
        """A report: journal its group, move the items' resume points, count its totals."""
        group = rep.group
        owned = s.owned
        for item in group.item_indices():
            if item not in owned:  # only an item's current actor speaks for it
                group.drop_item(item)
        for item, b in group.blocks.items():
            if b.last_step >= 0:
                it = owned[item]
                it.step = b.last_step + 1
                it.state = b.last_state
        source = self._items
        for i, x in enumerate(group.items):
            if isinstance(x, ItemEnd):
                held = owned.pop(x.item, None)
                if held is not None and source is not None:
                    # the source's word on it (a graph's tree: the node's output and the
                    # children it expanded into, its dependents made ready; a bad expansion
                    # fails it); it is what the journal takes, in this group
                    x = group.items[i] = source.ended(held, x)
                self._end(x)
        self.totals.merge(rep.totals)
        if group:
            for fn in self.events.group:
                fn(group)
        s.started = True
        s.in_flight = rep.in_flight
        self.worker_cpu_s += rep.cpu_s
        s.unreported, s.unreported_tokens = rep.unreported, rep.unreported_tokens
        if rep.failure is not None and self.failure is None:
            self.failure = rep.failure
        if rep.stop_reason is not None:
            self.request_stop(rep.stop_reason)
        if rep.done:
            s.done = True

    def _end(self, e: ItemEnd) -> None:
        self.ended[e.status] += 1
        self._last_end = e
        if e.status != "completed" and len(self._not_completed) < KEEP_ENDS:
            self._not_completed.append(e)

    def _say(self, text: str) -> None:
        if self.notify is not None:
            self.notify(text)

    def _died(self, s: _Slot, error: BaseException) -> None:
        """An actor died: a new one takes its unfinished items from their last decision
        received (or, when the run is stopping, they are left for a resume)."""
        self.restarts += 1
        self.redrawn_samples += s.unreported
        self.redrawn_tokens += s.unreported_tokens
        with contextlib.suppress(Exception):  # an actor already gone
            self.ray.kill(s.actor, no_restart=True)
        s.actor = None
        what = f"worker {s.index + 1} died ({type(error).__name__})"
        held = list(s.owned.values())
        if self.stop_reason is None and self.restarts > self.max_restarts:
            self.request_stop(f"workers keep dying ({self.restarts} restarts; last: {what})")
        if self.stop_reason is not None:
            s.done = True
            self._say(f"{what}; the run is stopping: its {len(held)} unfinished items are left")
            return
        s.actor = self._remote.remote(s.work)
        s.since, s.started = time.monotonic(), False
        s.rehand = held + s.rehand
        s.closed = s.stop_sent = False
        again = f", at least {s.unreported} samples" if s.unreported else ""
        self._say(
            f"{what}; a new worker takes its {len(held)} unfinished items from their last "
            f"decisions received (the steps in flight on it are drawn again{again})"
        )
        s.in_flight = s.unreported = s.unreported_tokens = 0

    def _not_started(self, slots: list[_Slot]) -> None:
        """Workers that never answered (a cluster with no room for them): the run stops,
        their items are left for a resume."""
        now = time.monotonic()
        late = [s for s in slots if not (s.started or s.done) and now - s.since > START_S]
        if not late:
            return
        self.request_stop(
            f"{len(late)} of {len(slots)} workers did not start within {START_S:.0f} s "
            "(is there a free CPU for each? see workers)"
        )
        for s in late:
            with contextlib.suppress(Exception):
                self.ray.kill(s.actor, no_restart=True)
            s.actor = s.pending = None
            s.done = True

    def _failed(self, s: _Slot, error: BaseException) -> None:
        first = str(error).strip().splitlines()
        reason = f"worker {s.index + 1} failed ({first[-1] if first else type(error).__name__})"
        if self.failure is None:
            self.failure = reason
        self.request_stop(reason)
        s.done = True


_SEEN_MODULES: set[str] = set()


def ship_by_value(process: object) -> None:
    """Pickle a process whose class was loaded from a file that no import path finds (a
    user's `FILE.py:Class`) together with its module's code: a worker cannot import it by
    name. Decided once per module; a class of an importable module goes by reference."""
    name = type(process).__module__
    if name in _SEEN_MODULES:
        return
    _SEEN_MODULES.add(name)
    module = sys.modules.get(name)
    if module is None or name == "__main__" or not getattr(module, "__file__", None):
        return
    if importlib.machinery.PathFinder.find_spec(name.partition(".")[0]) is None:
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
