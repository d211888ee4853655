"""Deciding one step from its samples (pure: no I/O, no asyncio).

standings.py   a step's vote counts, leader and runner-up: what both rules keep
ahead_by_k.py  first-to-ahead-by-k: `Tally`
adaptive.py    the adaptive rule, learnt from the run's votes: `AdaptiveRule`, `AdaptiveTally`
posterior.py   the adaptive rule's error model and posterior (pure statistics)
step.py        one step's vote over its samples, red flags and all: `StepVote`, `judge`
config.py      how steps are voted on and what a run may spend: `VotingConfig`, `Budget`
weighted.py    a vote that knows its voters: each sample weighed by its source's reliability
               on the step's cell, drawn in the route planning gives: `WeightedVote`
"""
