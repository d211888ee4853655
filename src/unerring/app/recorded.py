"""A run's configuration as the journal records it (`runs.config`, one flat JSON object in
the keys every version so far wrote) and back: what a resume starts from and must match."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from unerring import defaults
from unerring._version import __version__
from unerring.app.options import RunConfig, Session
from unerring.backends.factory import Transport
from unerring.backends.spec import parse_model
from unerring.planning.plan import VotingOptions
from unerring.process_factory import ProcessFactory, short_name

# options a resume may change: they do not change which answers win
CHANGEABLE = frozenset({"parallel", "record", "unerring_version", "base_url", "max_steps"})

# resolved when a run starts and kept by every resume (never recomputed)
KEPT = frozenset({"stopping_resolved"})

# compared only where both sides have one: a journal older than it, or a resume that
# makes its processes from the journal's own record, has nothing to compare
WHEN_BOTH = frozenset({"construction"})

_VOTING = tuple(f.name for f in fields(VotingOptions))
_APART = ("stopping", "variants", "reliability")  # written in their own places

# each recorded option's default, as the journal holds it (an option newer than a run is
# at its default there)
_DEFAULTS: dict[str, Any] = {
    **{f.name: f.default for f in fields(VotingOptions)},
    "variants": list(defaults.VARIANTS),
    "model": defaults.MODEL,
    "api": defaults.API,
    "base_url": None,
    "notes": None,
    "max_depth": defaults.MAX_DEPTH,
    "max_steps": None,
}


def recorded(
    config: RunConfig, factory: ProcessFactory, construction: Any = None
) -> dict[str, Any]:
    """What the journal records of a run's configuration (and of its task: where a user's
    class is found again, how its processes were made; app.fingerprint)."""
    v = config.voting
    out: dict[str, Any] = {"task": factory.name, "task_options": dict(factory.options)}
    source = getattr(factory, "source", None)  # a user's class by reference (unerring.tasks)
    if source:
        out["task_source"] = dict(source)
    if construction is not None:
        out["construction"] = construction
    out["model"] = config.model.label  # the text as given: a resume compares it as text
    out.update({name: getattr(v, name) for name in _VOTING if name not in _APART})
    out["api"] = config.model.api
    out["base_url"] = config.session.transport.base_url
    out["notes"] = config.notes
    out["max_depth"] = config.max_depth
    out["stopping"] = v.stopping
    out["variants"] = list(v.variants)  # as the journal's JSON gives it back
    if config.max_steps is not None:  # (left out when not given: as earlier builds wrote)
        out["max_steps"] = config.max_steps
    out["unerring_version"] = __version__
    if v.reliability is not None:  # a weighted vote's table (a run without one has no key)
        out["reliability"] = v.reliability
    return out


def content_run_id(
    task: str, journaled: Mapping[str, Any], rows: Sequence[tuple[str, Any, Any]]
) -> str:
    """A new run's id from what it runs: its task's short name and a digest of its
    recorded configuration (its processes' construction among it) and its items' ids and
    options. The same library call made again names the same run; another process,
    argument, model or voting option names another. What a process reads from outside
    itself (a global list, a file) is not in it: change `run_id` for that."""
    kept = {k: v for k, v in journaled.items() if k not in CHANGEABLE}
    text = json.dumps([kept, [[i, o] for i, o, _ in rows]], sort_keys=True, default=repr)
    return f"{short_name(task)}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def from_journal(config: Mapping[str, Any]) -> RunConfig:
    """The configuration a journal recorded (options it predates at their defaults), in a
    session that keeps nothing but the run's endpoint: a resume replaces what it is given."""
    voting = {name: config[name] for name in _VOTING if name in config}
    if "variants" in voting:
        voting["variants"] = tuple(voting["variants"])
    return RunConfig(
        model=parse_model(
            str(config.get("model", defaults.MODEL)), config.get("api") or defaults.API
        ),
        voting=VotingOptions(**voting),
        notes=config.get("notes"),
        max_depth=int(config.get("max_depth", defaults.MAX_DEPTH)),
        max_steps=config.get("max_steps"),
        session=Session(transport=Transport(base_url=config.get("base_url"))),
    )


def config_difference(journal: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """What differs between a journal's configuration and the one given, option by option
    (those a resume may change, and those resolved once, left out)."""
    out = []
    for name in sorted(set(journal) | set(given)):
        if name in CHANGEABLE or name in KEPT:
            continue
        if name in WHEN_BOTH and (name not in journal or name not in given):
            continue
        if name not in journal and given.get(name) == _DEFAULTS.get(name):
            continue  # an option newer than the run, at its default: what the run used
        if journal.get(name) != given.get(name):
            out.append(f"{name}: journal has {journal.get(name)!r}, given {given.get(name)!r}")
    return out
