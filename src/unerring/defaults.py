"""Every default of a run, written once: the library's keywords, the configuration's
fields and the CLI's help all read them from here. Imports nothing of unerring's."""

from __future__ import annotations

import os
from typing import Final

# -- what decides a run's answers (recorded in the journal; a resume must match) ----------
MODEL: Final = "sim:error=0.01"  # the simulated model: a run costs nothing until one is named
TARGET: Final = 0.95  # P(every step right) that k is planned for
FIRST_TEMPERATURE: Final = 0.0  # each step's first sample
TEMPERATURE: Final = 0.1  # the step's other samples
MAX_TOKENS: Final = 750  # a longer response is red-flagged
SAMPLES_PER_K: Final = 50  # a step's sample cap is this many times k, unless given
ON_UNDECIDED: Final = "stop"  # a step at its cap stops the run (or "plurality")
PARALLEL: Final = 1  # samples drawn per round after the first
RECORD: Final = "contested"  # samples kept: "decisions", "contested" or "samples"
STOPPING: Final = "ahead-by-k"  # or "adaptive"
STOPPING_RULES: Final = ("ahead-by-k", "adaptive")
VARIANTS: Final = (0,)  # prompt variants spread over a step's samples: the one prompt
API: Final = "chat"  # how a served model is asked: chat messages or a completion prompt
MAX_DEPTH: Final = 32  # a graph deeper than this is refused (its node fails)

# -- how an attempt runs (a resume may change any of it) --------------------------------
STORE: Final = os.path.join(".unerring", "runs.db")
DURABILITY: Final = "group"  # commit in groups off the step loop ("sync": each decision)
SPECULATE: Final = 0  # chain steps opened ahead of their vote
EXECUTOR: Final = "local"
API_KEY_ENV: Final = "OPENAI_API_KEY"
TIMEOUT_S: Final = 60.0  # a whole request, sent to last byte
CONCURRENCY: Final = 8  # requests in flight
MAX_OUTAGE_S: Final = 300.0  # failed requests for this long stop the run cleanly
MAX_RESPONSE_BYTES: Final = 4 << 20  # no more of an answer is read
N_MODE: Final = "auto"  # several samples per request with `n`, where the server honours it
FAULT_SEED: Final = 0

# -- planning and calibration (`unerring plan`) ------------------------------------------
VALID_RATE: Final = 1.0  # share of samples that pass the red flags
HARD_SHARE: Final = 0.0  # share of steps whose errors are not independent
HARD_ERROR: Final = 0.45  # per-sample error on those steps
CALIBRATION_SAMPLES: Final = 200  # steps sampled to measure a model's error rate
CALIBRATION_PER_STEP: Final = 2  # samples of each model and variant per sampled step
CALIBRATION_SEED: Final = 0  # which steps a real model is calibrated on (a sim: its seed)
# a weighted vote's cap on samples per step: each source this many times, at least...
WEIGHTED_CAP_PER_SOURCE: Final = 2
WEIGHTED_CAP_MIN: Final = 50  # ...this many
