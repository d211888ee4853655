"""The items of a batch from the command line: `--items FILE.jsonl` or `--batch N`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from unerring.app.checks import item_id_problem
from unerring.app.options import BatchItem
from unerring.errors import UsageError
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.limits import MAX_ITEMS, shown
from unerring.tasks.registry import TaskSpec


def _value(spec: TaskSpec, name: str, value: Any, where: str) -> Any:
    option = next(o for o in spec.options if o.name == name)
    if option.type is int:
        # JSON numbers only: a bool is an int to Python, "3" is not a number to JSON
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where}: {name} must be a whole number, got {json.dumps(value)}")
        return value
    try:
        return option.type(value)
    except (TypeError, ValueError):
        raise UsageError(
            f"{where}: {name} must be a {option.type.__name__}, got {json.dumps(value)}"
        ) from None


def item_lines(path: str, of_what: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The items of `--items FILE.jsonl`: (item id, where, fields) for each line, a JSON
    object of `of_what` with an optional "id" (a string, taken out of the fields; else the
    line number from 1). Blank lines are skipped; ids are checked and unique; at most
    MAX_ITEMS; a file with none is refused."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--items {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--items {path} is a directory; give a JSON-lines file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--items {path} cannot be read ({e})") from None
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"--items {path} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{where} is not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise UsageError(f"{where} is not a JSON object of {of_what}")
        item_id = obj.pop("id", str(number))
        problem = item_id_problem(item_id)
        if problem is not None:
            raise UsageError(f'{where}: "id" {problem}')
        if item_id in seen:
            raise UsageError(f"{where}: item id {item_id!r} is also on line {seen[item_id]}")
        seen[item_id] = number
        if len(seen) > MAX_ITEMS:
            raise UsageError(
                f"--items {path} holds more than {MAX_ITEMS:,} items; split it into several runs"
            )
        yield item_id, where, obj
    if not seen:
        raise UsageError(f"--items {path} holds no items")


def items_from_file(path: str, spec: TaskSpec, base: Mapping[str, Any]) -> list[BatchItem]:
    """One item per line: a JSON object of the task's options, optionally with an "id"
    (a string; else the line number from 1). Blank lines are skipped."""
    known = {o.name for o in spec.options}
    items: list[BatchItem] = []
    for item_id, where, obj in item_lines(path, f"{spec.name} options"):
        options = dict(base)
        for name, value in obj.items():
            if name not in known:
                raise UsageError(
                    f"{where}: {name!r} is not an option of task {spec.name!r} "
                    f"(known: {', '.join(sorted(known)) or 'none'})"
                )
            options[name] = _value(spec, name, value, where)
        items.append(BatchItem(item_id, options, origin=where))
    return items


def numbered_items(n: int, spec: TaskSpec, base: Mapping[str, Any]) -> list[BatchItem]:
    """Items 1..n of the same options; a task with a seed gets seed = id - 1."""
    if n < 1:
        raise UsageError(f"--batch must be at least 1, got {n}")
    if n > MAX_ITEMS:  # before a single item is made
        raise UsageError(f"--batch must be at most {MAX_ITEMS:,}, got {shown(n)}")
    has_seed = any(o.name == "seed" for o in spec.options)
    return [
        BatchItem(str(i), {**base, "seed": i - 1} if has_seed else dict(base))
        for i in range(1, n + 1)
    ]


def named_item(store: Store, run: RunRecord, item_id: str | None) -> ItemRecord | None:
    """The item `--item ID` names (None without --item)."""
    if item_id is None:
        return None
    if run.kind == "chain":
        raise UsageError(
            f"run {run.run_id!r} is a single chain; --item applies to batches and graphs"
        )
    found = store.item(run, item_id)
    if found is None:
        raise UsageError(f"run {run.run_id!r} has no item {item_id!r} (see `unerring show`)")
    return found
