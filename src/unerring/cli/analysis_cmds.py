"""`unerring failures` and `unerring notes learn|list|show|diff`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from unerring.analysis.learn import learn
from unerring.analysis.notebook import Notebook, diff, list_notebooks, load_notebook
from unerring.analysis.records import safe
from unerring.analysis.report import failures_report
from unerring.cli.args import Parser, add_store, open_store, positive_int
from unerring.errors import UsageError
from unerring.journal.store import Store
from unerring.tasks.registry import resolve


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def cmd_failures(args: argparse.Namespace) -> int:
    store = open_store(args.store, write=args.save)
    store.check()  # it reads every record of the runs: a damaged file is refused first
    report = failures_report(
        store, args.run_ids, examples=args.examples, save=args.save, resolve=resolve
    )
    if args.json:
        _out(json.dumps(report))
        return 0
    for r in report["runs"]:
        what = r["task"]
        if r["kind"] == "batch":
            what += f", a batch of {r['items']:,} items"
        _out(
            f"run {safe(r['run_id'])} ({what}, {r['status']}): {r['failures']:,} failures "
            f"over {r['steps_decided']:,} steps, {r['samples']:,} samples "
            f"(samples kept: {r['record_level']})"
            + (
                f"; {r['items_with_failures']:,} items with failures"
                if r["kind"] == "batch"
                else ""
            )
        )
    if report["saved"] is not None:
        _out(f"saved {report['saved']:,} failure records to the journal (table failures)")
    cats = ", ".join(f"{k} {v:,}" for k, v in report["by_category"].items()) or "none"
    _out(f"by category: {cats}")
    if report["by_nature"]:
        _out("by nature: " + ", ".join(f"{k} {v:,}" for k, v in report["by_nature"].items()))
    for i in report["incidents"]:
        _out(
            f"INCIDENT in {safe(i['run_id'])}: {i['failures']} transport failures over "
            f"{i['steps']} steps in {i['end'] - i['start']:.1f} s ({i['categories']}): "
            "infrastructure, not content"
        )
    for p in report["patterns"]:
        _out()
        over = ", ".join(f"{x['feature']} x{x['lift']:.1f}" for x in p["over_represented"][:3])
        where = f"{p['steps_affected']:,} steps"
        if report["batch"]:
            # across items: the same mistake in many items is what a note should fix
            where += f" in {p['items_affected']:,} of {report['items']:,} items"
        _out(
            f"pattern {p['id']}: {p['size']:,} failures ({p['share_of_samples']:.2%} of samples), "
            f"{where}, {p['nature']}"
        )
        if over:
            _out(f"  over-represented: {over}")
        if p["top_answers"]:
            top = "; ".join(f"{safe(a['answer'], 80)} ({a['count']:,})" for a in p["top_answers"])
            _out(f"  top answers: {top}")
        for ex in p["examples"]:
            _out(f"  e.g. {safe(ex, 120)}")
        _out(f"  do: {p['advice']}")
    for loc in report["localisation"]:
        _out()
        if not loc["checked"]:
            _out(f"localisation {safe(loc['run_id'])}: no checker; cannot name a wrong step")
        elif loc["first_wrong_step"] is None:
            _out(f"localisation {safe(loc['run_id'])}: the checker found no wrong decision")
        elif loc["batch"]:
            _out(
                f"localisation {safe(loc['run_id'])}: first wrong step {loc['first_wrong_step']} "
                f"of item {safe(loc['first_wrong_item'] or '')} (tally {loc['tally']}; "
                f"{loc['wrong_steps']} wrong steps in {loc['wrong_items']} items)"
            )
        else:
            _out(
                f"localisation {safe(loc['run_id'])}: first wrong step {loc['first_wrong_step']} "
                f"(tally {loc['tally']}; {loc['wrong_steps']} wrong steps in all)"
            )
            _out(f"  winner: {safe(loc['winner'] or '', 120)}")
            if not loc["samples_journaled"]:
                _out("  its samples were not journaled (unanimous); use --record samples")
            for s in loc["outvoters"][:5]:
                _out(f"  out-voted by sample {s['index']}: {safe(s['response'], 100)}")
    for c in report["correlation"]:
        _out()
        _out(f"correlation {safe(c['run_id'])}: {_independence_line(c)}")
        for name, g in c["groups"].items():
            if g["steps_paired"]:
                hard = "-" if g["hard_share"] is None else f"{g['hard_share']:.1%}"
                pairs = (
                    f"collisions {g['collisions']} of {g['steps_paired']} steps with two of "
                    f"its samples ({g['collision_rate']:.1%}), hard steps {hard}"
                )
            else:
                pairs = "never two samples on one step: no collision to measure"
            _out(
                f"  {safe(name, 80)}: error {g['error_rate']:.4f} over {g['steps']} steps, {pairs}"
            )
        if c["groups"]:
            _out("  (per variant and per model: the steps whose samples were kept)")
        for w in c["warnings"]:
            print(f"unerring: warning: {w}", file=sys.stderr)
    return 0


def _independence_line(c: dict[str, Any]) -> str:
    """Error rate, both-wrong and collisions, and the hard-step test, in one line."""
    parts = [f"error {c['error_rate']:.4f} over {c['samples']:,} votes"]
    bw = c["both_wrong"]
    if bw is not None:
        ratio = "-" if c["collision_ratio"] is None else f"{c['collision_ratio']:.1f}x"
        parts.append(
            f"first two votes both wrong on {bw['both_wrong']} of {bw['steps']:,} steps "
            f"(independent errors: {bw['expected']:.1f}), collisions {c['collisions']} "
            f"({ratio} the independent bound)"
        )
    hs = c["hard_steps"]
    if c["hard_share"]:
        parts.append(
            f"hard steps {c['hard_share']:.1%} at error {c['hard_error']:.3f} "
            f"(the rest {c['easy_error']:.4f})"
        )
    elif hs["wrong"]:
        parts.append("no hard steps beyond chance")
    return ", ".join(parts)


def _print_notebook(nb: Notebook) -> None:
    state = "accepted" if nb.accepted else "rejected (rolled back)"
    _out(f"notebook {nb.name}@{nb.version}: {state}, {len(nb.notes)} notes, from {safe(nb.source)}")
    _out(f"  reason: {safe(nb.reason, 600)}")
    for n in nb.notes:
        _out(f"- when {' and '.join(n.when) or 'always'}: {safe(n.render(), 800)}")


def cmd_notes_learn(args: argparse.Namespace) -> int:
    store = open_store(args.store, write=True)
    try:
        result = learn(
            store,
            args.run_ids,
            args.model,
            resolve=resolve,
            writer=args.writer,
            name=args.name,
            validation=args.validation,
            samples=args.samples,
            seed=args.seed,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.json:
        _out(json.dumps(result.as_dict()))
        return 0
    _out(f"{result.patterns} patterns, {len(result.candidates)} candidate notes")
    for c in result.candidates:
        _out(f"- {c.pattern} ({c.writer}): {c.outcome}")
        if c.gate is not None:
            _out(f"  {c.gate.reason}")
    _print_notebook(result.notebook)
    return 0


def cmd_notes_list(args: argparse.Namespace) -> int:
    books = list_notebooks(open_store(args.store))
    if args.json:
        _out(json.dumps([b.as_dict() for b in books]))
        return 0
    if not books:
        _out(f"no notebooks in {args.store}")
    for b in books:
        state = "accepted" if b.accepted else "rejected"
        _out(f"{b.name}@{b.version}  {state:<8}  {len(b.notes)} notes  {safe(b.reason, 100)}")
    return 0


def _load(store: Store, ref: str) -> Notebook:
    try:
        return load_notebook(store, ref, accepted_only=False)
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_notes_show(args: argparse.Namespace) -> int:
    nb = _load(open_store(args.store), args.notebook)
    if args.json:
        _out(json.dumps(nb.as_dict()))
    else:
        _print_notebook(nb)
    return 0


def cmd_notes_diff(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    d = diff(_load(store, args.a), _load(store, args.b))
    if args.json:
        _out(json.dumps(d))
        return 0
    for kind, sign in (("added", "+"), ("removed", "-"), ("kept", " ")):
        for n in d[kind]:
            _out(f"{sign} when {' and '.join(n['when']) or 'always'}: {safe(n['subject'])}")
    return 0


def register(sub: Any) -> None:
    """Add the analysis commands to the CLI's subparsers."""
    f = sub.add_parser(
        "failures",
        help="classify, cluster and localise the failures of runs",
        description="Failure records of one or more runs (every item of a batch), grouped "
        "into patterns across items and runs, with the first wrong step and a correlation "
        "check.",
    )
    f.add_argument("run_ids", metavar="RUN_ID", nargs="+")
    add_store(f)
    f.add_argument("--examples", type=positive_int, default=3, help="example responses each")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.add_argument(
        "--save",
        action="store_true",
        help="also write the records, with their pattern, to the journal's failures table",
    )
    f.set_defaults(func=cmd_failures)

    notes = sub.add_parser("notes", help="the mistake notebook: learn, list, show, diff")
    nsub = notes.add_subparsers(dest="notes_command", metavar="ACTION", parser_class=Parser)
    nsub.required = True

    lp = nsub.add_parser("learn", help="distil failure patterns into notes, gated by validation")
    lp.add_argument("run_ids", metavar="RUN_ID", nargs="+")
    lp.add_argument("--model", required=True, help="model to validate the notes on")
    lp.add_argument(
        "--writer",
        default="template",
        help="who writes notes: template (default; deterministic) or a model spec",
    )
    lp.add_argument("--name", help="notebook name (default: the task's name)")
    lp.add_argument("--validation", type=positive_int, default=20, help="steps per group")
    lp.add_argument("--samples", type=positive_int, default=5, help="paired samples per step")
    lp.add_argument("--seed", type=int, default=0, help="picks the validation steps")
    add_store(lp)
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=cmd_notes_learn)

    ls = nsub.add_parser("list", help="notebook versions in a store")
    add_store(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_notes_list)

    sh = nsub.add_parser("show", help="one notebook version (NAME: latest accepted; NAME@V)")
    sh.add_argument("notebook", metavar="NOTEBOOK")
    add_store(sh)
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_notes_show)

    df = nsub.add_parser("diff", help="notes added and removed between two versions")
    df.add_argument("a", metavar="NOTEBOOK_A")
    df.add_argument("b", metavar="NOTEBOOK_B")
    add_store(df)
    df.add_argument("--json", action="store_true")
    df.set_defaults(func=cmd_notes_diff)
