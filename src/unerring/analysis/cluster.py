"""Grouping failure records into patterns: by category, then by the step features that are
over-represented against all steps, then by response text (TF-IDF, pure Python).

Records of every item of a batch (and of every run analysed) are clustered together, so a
mistake that recurs across items is one pattern, which says how many items it spans.

The clusterer reads categories, features and response text only; never the simulator's
ground-truth labels (those are for scoring it, with `adjusted_rand_index`).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from unerring.analysis.failure import FailureRecord, tokens_of
from unerring.analysis.taxonomy import BY_CATEGORY, Category

_WORD = re.compile(r"[A-Za-z_]+|\d+|[^\sA-Za-z_\d]")
FIRST_PLACES = 10  # places a pattern names, its item's id with each step


@dataclass(frozen=True, slots=True)
class Lift:
    token: str  # name=value
    share: float  # of the pattern's records
    base: float  # of all steps
    lift: float

    def as_dict(self) -> dict[str, object]:
        return {"feature": self.token, "share": self.share, "base": self.base, "lift": self.lift}


@dataclass(frozen=True, slots=True, kw_only=True)
class Pattern:
    """One kind of failure: a category, the step features (or response text) that mark it,
    and where it happened; records of every item (and run) clustered share patterns."""

    id: str
    category: Category
    members: tuple[int, ...]  # indices into the records clustered
    selector: tuple[str, ...]  # feature tokens that define it (empty: text or category only)
    size: int
    share: float  # of all samples drawn
    steps: tuple[int, ...]  # affected step numbers (sorted; one number for all items)
    places: tuple[tuple[int, int], ...]  # affected (item index, step) pairs (sorted)
    items: tuple[str, ...]  # ids of the affected items, in item order
    over: tuple[Lift, ...]  # over-represented features
    examples: tuple[str, ...]
    answers: tuple[tuple[str, int], ...]  # most common wrong answers and their counts
    systematic: float  # share of records marked systematic
    advice: str
    categories: tuple[tuple[str, int], ...] = ()
    # the first places by item, then step, with the item named: (item id, step)
    first_places: tuple[tuple[str, int], ...] = ()

    @property
    def nature(self) -> str:
        return "systematic" if self.systematic >= 0.5 else "intermittent"


@dataclass(frozen=True, slots=True)
class Clustering:
    patterns: tuple[Pattern, ...]
    assignment: tuple[int, ...]  # pattern index of each record, -1 for none


def _z(count: int, n: int, base: float) -> float:
    if base <= 0.0 or base >= 1.0:
        return 0.0
    return (count - n * base) / math.sqrt(n * base * (1.0 - base))


def _peel(
    idx: list[int],
    toks: Sequence[tuple[str, ...]],
    baseline: Mapping[str, int],
    baseline_steps: int,
    min_size: int,
    min_lift: float,
    min_z: float,
) -> tuple[list[tuple[tuple[str, ...], list[int]]], list[int]]:
    """Repeatedly take off the records that share the most over-represented feature."""
    groups: list[tuple[tuple[str, ...], list[int]]] = []
    remaining = idx
    while len(remaining) >= min_size and baseline_steps:
        n = len(remaining)
        counts: Counter[str] = Counter()
        for i in remaining:
            counts.update(toks[i])
        best: tuple[float, str] | None = None
        for t, c in counts.items():
            base = baseline.get(t, 0) / baseline_steps
            if c < min_size or base <= 0.0:
                continue
            lift = (c / n) / base
            z = _z(c, n, base)
            if lift >= min_lift and z >= min_z and (best is None or (z, t) > best):
                best = (z, t)
        if best is None:
            break
        token = best[1]
        group = [i for i in remaining if token in toks[i]]
        # a conjunction: a second token that nearly all of the group share, and that is
        # itself over-represented inside the group, narrows the selector (disk=3 and ...)
        sel = [token]
        inner: Counter[str] = Counter()
        for i in group:
            inner.update(toks[i])
        for t, c in sorted(inner.items()):
            if t == token or c < 0.95 * len(group):
                continue
            base = baseline.get(t, 0) / baseline_steps
            if base > 0.0 and base < 0.9 and (c / len(group)) / base >= min_lift:
                sel.append(t)
        groups.append((tuple(sel), group))
        taken = set(group)
        remaining = [i for i in remaining if i not in taken]
    return groups, remaining


def text_vectors(texts: Sequence[str]) -> list[dict[str, float]]:
    """L2-normalised TF-IDF vectors of word, number and punctuation tokens."""
    docs = [Counter(_WORD.findall(t.lower())) for t in texts]
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d.keys())
    n = len(docs)
    out = []
    for d in docs:
        v = {w: (1.0 + math.log(c)) * math.log((1 + n) / (1 + df[w]) + 1.0) for w, c in d.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        out.append({w: x / norm for w, x in v.items()})
    return out


def _cos(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(x * b.get(w, 0.0) for w, x in a.items())


def text_clusters(texts: Sequence[str], threshold: float = 0.35) -> list[int]:
    """Leader clustering by TF-IDF cosine: each text joins the nearest centroid above the
    threshold or starts a cluster (deterministic, one pass, then one reassignment)."""
    vecs = text_vectors(texts)
    cents: list[dict[str, float]] = []
    labels: list[int] = []
    for v in vecs:
        best, sim = -1, threshold
        for j, c in enumerate(cents):
            s = _cos(v, c)
            if s >= sim:
                best, sim = j, s
        if best < 0:
            cents.append(dict(v))
            best = len(cents) - 1
        labels.append(best)
    # recompute centroids and reassign once: the first pass depends on order
    sums: list[dict[str, float]] = [defaultdict(float) for _ in cents]
    for v, lab in zip(vecs, labels, strict=True):
        for w, x in v.items():
            sums[lab][w] += x
    cents = []
    for total in sums:
        norm = math.sqrt(sum(x * x for x in total.values())) or 1.0
        cents.append({w: x / norm for w, x in total.items()})
    return [max(range(len(cents)), key=lambda j: (_cos(v, cents[j]), -j)) for v in vecs]


def _advice(cat: Category, systematic: bool, selector: tuple[str, ...]) -> str:
    if cat in (Category.OUTVOTED, Category.REJECTED):
        if systematic and selector:
            return (
                f"systematic on steps with {', '.join(selector)}: learn a mistake note "
                "(`unerring notes learn`) or fix the prompt; decorrelate with another model "
                "or temperature; raising k alone will not fix it"
            )
        if systematic:
            return "systematic: fix the prompt or decorrelate (another model or temperature)"
        return "intermittent: voting handles it; raise k if the planned margin is thin"
    return BY_CATEGORY[cat].advice


def cluster(
    records: Sequence[FailureRecord],
    baseline: Mapping[str, int],
    baseline_steps: int,
    total_samples: int,
    *,
    min_lift: float = 2.0,
    min_z: float = 4.0,
    min_size: int | None = None,
    text_threshold: float = 0.35,
    examples: int = 3,
) -> Clustering:
    """Group records into patterns: category, then features, then response text."""
    # a wrong answer that lost and one that won and was rejected are the same mistake:
    # they are grouped together, and the pattern keeps the split in `categories`
    by_cat: dict[Category, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_cat[Category.OUTVOTED if r.category is Category.REJECTED else r.category].append(i)
    # records of one step share its features dict: spell its tokens once
    spelled: dict[int, tuple[str, ...]] = {}
    toks = []
    for r in records:
        t = spelled.get(id(r.features))
        if t is None:
            t = spelled[id(r.features)] = tokens_of(r.features)
        toks.append(t)
    assignment = [-1] * len(records)
    patterns: list[Pattern] = []

    def emit(cat: Category, selector: tuple[str, ...], members: list[int], tag: str) -> None:
        assignment_index = len(patterns)
        for i in members:
            assignment[i] = assignment_index
        patterns.append(
            _pattern(
                f"{cat.value}/{tag}",
                cat,
                selector,
                members,
                records,
                toks,
                baseline,
                baseline_steps,
                total_samples,
                examples,
            )
        )

    for cat in sorted(by_cat, key=lambda c: (-len(by_cat[c]), c.value)):
        idx = by_cat[cat]
        floor = min_size if min_size is not None else max(3, len(idx) // 50)
        groups, rest = _peel(idx, toks, baseline, baseline_steps, floor, min_lift, min_z)
        for sel, members in groups:
            emit(cat, sel, members, "+".join(sel))
        if not rest:
            continue
        labels = text_clusters([records[i].excerpt for i in rest], text_threshold)
        parts: dict[int, list[int]] = defaultdict(list)
        for i, lab in zip(rest, labels, strict=True):
            parts[lab].append(i)
        small: list[int] = []
        n_text = 0
        for lab in sorted(parts, key=lambda k: -len(parts[k])):
            members = parts[lab]
            if len(members) < floor:
                small.extend(members)
                continue
            n_text += 1
            emit(cat, (), members, f"text{n_text}")
        if small:
            emit(cat, (), sorted(small), "other")
    return Clustering(tuple(patterns), tuple(assignment))


def _pattern(
    pid: str,
    cat: Category,
    selector: tuple[str, ...],
    members: list[int],
    records: Sequence[FailureRecord],
    toks: Sequence[tuple[str, ...]],
    baseline: Mapping[str, int],
    baseline_steps: int,
    total_samples: int,
    n_examples: int,
) -> Pattern:
    n = len(members)
    counts: Counter[str] = Counter()
    for i in members:
        counts.update(toks[i])
    over = []
    for t, c in counts.items():
        base = baseline.get(t, 0) / baseline_steps if baseline_steps else 0.0
        share = c / n
        if base > 0.0 and share / base >= 1.5 and c >= 2:
            over.append(Lift(t, share, base, share / base))
    over.sort(key=lambda x: (-x.lift * x.share, x.token))
    answers: Counter[str] = Counter()
    for i in members:
        a = records[i].answer
        if a is not None:
            answers[a] += 1
    texts: list[str] = []
    for ans, _ in answers.most_common():
        t = next(records[i].excerpt for i in members if records[i].answer == ans)
        if t not in texts:
            texts.append(t)
        if len(texts) >= n_examples:
            break
    for i in members:
        if len(texts) >= n_examples:
            break
        if records[i].excerpt not in texts:
            texts.append(records[i].excerpt)
    systematic = sum(1 for i in members if records[i].systematic) / n if n else 0.0
    cats = Counter(records[i].category for i in members)
    if cat is Category.OUTVOTED and cats.get(Category.REJECTED, 0) > cats.get(cat, 0):
        cat = Category.REJECTED
    # an item is known by its id (the same batch analysed in two runs is the same items)
    item_ids = {records[i].item_id: records[i].item for i in members}
    return Pattern(
        id=pid,
        category=cat,
        members=tuple(sorted(members)),
        selector=selector,
        size=n,
        share=n / total_samples if total_samples else 0.0,
        steps=tuple(sorted({records[i].step for i in members})),
        places=tuple(sorted({records[i].place for i in members})),
        items=tuple(sorted(item_ids, key=lambda x: (item_ids[x], x))),
        over=tuple(over[:5]),
        examples=tuple(texts[:n_examples]),
        answers=tuple((a, c) for a, c in answers.most_common(3)),
        systematic=systematic,
        advice=_advice(cat, systematic >= 0.5, selector),
        categories=tuple((c.value, k) for c, k in cats.most_common()),
        first_places=tuple(
            (item_id, step)
            for _, step, item_id in sorted(
                {(records[i].item, records[i].step, records[i].item_id) for i in members}
            )[:FIRST_PLACES]
        ),
    )


def _comb2(n: int) -> float:
    return n * (n - 1) / 2.0


def adjusted_rand_index(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Adjusted Rand index of two labelings of the same items (1 = identical partitions)."""
    if len(a) != len(b):
        raise ValueError("labelings must have the same length")
    n = len(a)
    if n < 2:
        return 1.0
    pairs = Counter(zip(a, b, strict=True))
    sa = Counter(a)
    sb = Counter(b)
    index = sum(_comb2(c) for c in pairs.values())
    ea = sum(_comb2(c) for c in sa.values())
    eb = sum(_comb2(c) for c in sb.values())
    expected = ea * eb / _comb2(n)
    top = (ea + eb) / 2.0
    if top == expected:
        return 1.0
    return (index - expected) / (top - expected)
