"""`--otel` and `--otel-content` for the commands that run: traces, when asked for."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from unerring.app.options import Watcher
from unerring.core.extras import require
from unerring.errors import MissingExtra, UsageError
from unerring.journal.store import RunRecord
from unerring.telemetry import requested


def add_otel_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("OpenTelemetry (pip install 'unerring[otel]')")
    g.add_argument(
        "--otel",
        action="store_true",
        help="send traces over OTLP/HTTP: a span per run, per decided step and per model "
        "request; the endpoint and the rest from the OTEL_* variables (default "
        "http://localhost:4318); also on when OTEL_EXPORTER_OTLP_ENDPOINT is set",
    )
    g.add_argument(
        "--otel-content",
        action="store_true",
        help="also put prompts and responses into the spans (off by default; keys never)",
    )


def watch(args: argparse.Namespace) -> Callable[[RunRecord, int], Watcher] | None:
    """The telemetry a run's session installs, or None (nothing on the hot path)."""
    by_env = requested(os.environ)
    if not args.otel and not by_env:
        if args.otel_content:
            raise UsageError("--otel-content needs --otel (or an OTEL_EXPORTER_OTLP_ENDPOINT)")
        return None
    try:
        require("opentelemetry.sdk", "otel", "--otel")
        require("opentelemetry.exporter.otlp.proto.http", "otel", "--otel")
    except MissingExtra as e:
        if args.otel:
            raise UsageError(str(e)) from None
        print(f"unerring: warning: OTEL_* variables ask for traces; {e}", file=sys.stderr)
        return None
    from unerring.telemetry.otel import Telemetry

    _one_line_warnings()
    return Telemetry.otlp(content=args.otel_content)


class _OneLine(logging.Handler):
    """The SDK's own warnings (a collector that is down) as one line each, said once."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said: set[object] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg in self.said:
            return
        self.said.add(record.msg)
        line = " ".join(record.getMessage().split())[:300]
        sys.stderr.write(f"unerring: warning: OpenTelemetry: {line}\n")


def _one_line_warnings() -> None:
    logger = logging.getLogger("opentelemetry")
    if not any(isinstance(h, _OneLine) for h in logger.handlers):
        logger.addHandler(_OneLine())
        logger.propagate = False
