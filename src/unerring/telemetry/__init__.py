"""OpenTelemetry traces of runs (the `otel` extra); see telemetry.otel.

This module imports no OpenTelemetry package: whether traces are asked for is known
without the extra installed.
"""

from __future__ import annotations

from collections.abc import Mapping


def requested(env: Mapping[str, str]) -> bool:
    """Do the standard OTEL_* variables ask for traces (an OTLP endpoint, or the exporter)?"""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").lower().split(",")}
    return (
        "otlp" in exporters
        or bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        or bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    )
