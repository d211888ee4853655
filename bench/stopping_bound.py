"""How close the adaptive rule comes to the best any stopping rule can do (Bayes-optimal).

For a known easy/hard mixture (all wrong votes on one answer), backward induction over vote
counts (leader, rival) finds the rule that minimises E[samples] + lam * P(wrong); lam is
searched until its P(wrong) per step matches ahead-by-k's, so the three rules are compared
at equal risk. Prints one JSON line.

    python bench/stopping_bound.py        # the hard-steps row of bench/certainty.py (~3 min)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from unerring.planning import reliability
from unerring.planning.predict import predict
from unerring.voting.adaptive import AdaptiveConfig
from unerring.voting.posterior import ErrorModel


def posterior(classes: list[tuple[float, float]], lead: int, rival: int) -> tuple[float, float]:
    """P(leader wrong), P(next vote goes to the leader) after `lead` : `rival` votes."""
    terms = []
    for share, e in classes:
        right = math.log(share) + lead * math.log1p(-e) + rival * math.log(e)
        wrong = math.log(share) + lead * math.log(e) + rival * math.log1p(-e)
        terms.append((right, wrong, e))
    top = max(max(r, w) for r, w, _ in terms)
    z = pw = pl = 0.0
    for r, w, e in terms:
        a, b = math.exp(r - top), math.exp(w - top)
        z += a + b
        pw += b
        pl += a * (1 - e) + b * e
    return pw / z, pl / z


def optimal(
    classes: list[tuple[float, float]], lam: float, cap: int, table: list[tuple[array, array]]
) -> list[list[bool]]:
    """The stop region of the Bayes rule for E[samples] + lam * P(wrong), capped votes."""
    value: list[list[float]] = [[] for _ in range(cap + 1)]
    stop: list[list[bool]] = [[] for _ in range(cap + 1)]
    for n in range(cap, 0, -1):
        row_v, row_s = [], []
        for rival in range(n // 2 + 1):
            lead = n - rival
            pw, pl = table[n][0][rival], table[n][1][rival]
            halt = lam * pw
            if n == cap:
                row_v.append(halt)
                row_s.append(True)
                continue
            up = value[n + 1][rival]  # the leader's vote
            r2 = rival + 1
            other = value[n + 1][r2] if r2 <= lead else value[n + 1][lead]
            go = 1.0 + pl * up + (1.0 - pl) * other
            row_v.append(min(halt, go))
            row_s.append(halt <= go)
        value[n], stop[n] = row_v, row_s
    return stop


def follow(stop: list[list[bool]], e: float, cap: int) -> tuple[float, float]:
    """(expected votes, P(decided wrong)) for a step whose samples err at e."""
    states = {(0, 0): 1.0}
    votes = wrong = 0.0
    for n in range(cap):
        nxt: dict[tuple[int, int], float] = {}
        for (x, y), m in states.items():
            for nx, ny, pm in ((x + 1, y, m * (1 - e)), (x, y + 1, m * e)):
                if stop[n + 1][min(nx, ny)]:
                    votes += pm * (n + 1)
                    wrong += pm if ny > nx else 0.0
                else:
                    nxt[(nx, ny)] = nxt.get((nx, ny), 0.0) + pm
        states = {s: m for s, m in nxt.items() if m > 1e-18}
    return votes, wrong


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--error", type=float, default=0.1)
    ap.add_argument("--hard", type=float, default=0.05)
    ap.add_argument("--hard-error", type=float, default=0.45)
    ap.add_argument("--steps", type=int, default=1023)
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--cap", type=int, default=2150)
    args = ap.parse_args()
    classes = [(1 - args.hard, args.error), (args.hard, args.hard_error)]
    k = reliability.k_min_mixture([(e, s) for s, e in classes], args.steps, args.target)
    fixed = reliability.mixture_samples([(e, s) for s, e in classes], k)
    p_fixed = reliability.p_full_mixture([(e, s) for s, e in classes], k, args.steps)
    risk = -math.log(p_fixed) / args.steps  # ahead-by-k's P(wrong) per step
    model = ErrorModel(args.hard, args.error, args.hard_error)
    adaptive = predict(AdaptiveConfig(args.steps, args.target, model, cap=args.cap))
    # P(wrong) and P(next vote to the leader) per (votes, rival votes), as flat arrays
    table: list[tuple[array, array]] = [(array("d"), array("d"))]
    for n in range(1, args.cap + 1):
        pairs = [posterior(classes, n - r, r) for r in range(n // 2 + 1)]
        table.append((array("d", [p for p, _ in pairs]), array("d", [q for _, q in pairs])))
    lo, hi = 1e3, 1e8
    best = (0.0, 0.0, 0.0)
    for _ in range(14):  # bisect lam (geometrically) until the risk matches ahead-by-k's
        lam = math.sqrt(lo * hi)
        stop = optimal(classes, lam, args.cap, table)
        votes = wrong = 0.0
        for share, e in classes:
            v, w = follow(stop, e, args.cap)
            votes += share * v
            wrong += share * w
        best = (lam, votes, wrong) if wrong <= risk else best
        lo, hi = (lam, hi) if wrong > risk else (lo, lam)
    lam, votes, wrong = best
    print(
        json.dumps(
            {
                "bench": "stopping_bound",
                "model": model.as_dict(),
                "steps": args.steps,
                "target": args.target,
                "ahead_by_k": {"k": k, "samples_per_step": fixed, "p_full": p_fixed},
                "adaptive": {
                    "samples_per_step": adaptive.samples_per_step,
                    "p_full": adaptive.p_full,
                    "vs_ahead_by_k": adaptive.samples_per_step / fixed,
                },
                "bayes_optimal_at_equal_risk": {
                    "lam": lam,
                    "samples_per_step": votes,
                    "p_full": math.exp(-args.steps * wrong),
                    "vs_ahead_by_k": votes / fixed,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
