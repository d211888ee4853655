"""OpenTelemetry traces of runs: a span per attempt of a run, per decided step (a child of
the run's span; of a batch, naming its item) and per model request (a child of its step's
span).

An event subscriber plus a backend wrapper, made only when tracing is asked for, so the
default path costs nothing. Attribute names follow the GenAI semantic conventions where
they fit (`gen_ai.*`), the rest are `unerring.*`. Prompts and responses go into spans
only with `content=True` (`--otel-content`); keys never do (no backend holds one here).
Needs the `otel` extra.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from unerring._version import __version__
from unerring.backends.base import Backend, TransportError, Wrapping
from unerring.core.events import Decision, Discarded, ItemEnd, ItemStart, TransportFailure
from unerring.core.samples import Sample, SampleRequest
from unerring.journal.store import RunRecord

CONTENT_LIMIT = 8192  # characters of a prompt or response put in a span (with content on)
REASON_LIMIT = 500


def _bounded(text: str, limit: int = CONTENT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"...[{len(text) - limit} more]"


class Telemetry:
    """Where spans go (a tracer provider); called with (run, k) it makes each attempt's
    watcher (see runner.Session.watch)."""

    def __init__(self, provider: TracerProvider, *, content: bool = False) -> None:
        self.provider = provider
        self.content = content
        self.tracer = provider.get_tracer("unerring", __version__)

    @classmethod
    def otlp(cls, *, content: bool = False, exporter: SpanExporter | None = None) -> Telemetry:
        """Spans batched to an OTLP/HTTP exporter configured by the OTEL_* variables."""
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        resource = Resource.create({"service.version": __version__})
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            # neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES named the service
            resource = resource.merge(Resource({SERVICE_NAME: "unerring"}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, content=content)

    def __call__(self, run: RunRecord, k: int) -> RunTracer:
        return RunTracer(self, run, k)

    def shutdown(self) -> None:
        self.provider.shutdown()


class _Request:
    __slots__ = ("retries", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.retries = 0


class RunTracer:
    """One attempt's spans. Hears items starting and ending, decisions, discarded
    speculation and transport failures; wraps the backend.

    Many requests are in flight at once (one per sample on backends that take time, the
    steps of many items side by side): a step's span is keyed by (item, step), a request's
    by (item, step, first_index), the very names a TransportFailure carries, so a retry
    is counted on the request it hit.
    """

    def __init__(self, telemetry: Telemetry, run: RunRecord, k: int) -> None:
        self.telemetry = telemetry
        self.tracer: Tracer = telemetry.tracer
        self.content = telemetry.content
        self.k = k
        self.batch = run.many_items  # a batch or a graph: spans name their item (node)
        self.graph = run.kind == "graph"
        cfg = run.config
        self.operation = "text_completion" if cfg.get("api") == "completions" else "chat"
        model = str(cfg.get("model", ""))
        self.provider = "unerring.sim" if model.startswith("sim") else model.partition(":")[0]
        attributes: dict[str, Any] = {
            "unerring.run_id": run.run_id,
            "unerring.task": run.task,
            "unerring.kind": run.kind,
            "unerring.k": k,
            "unerring.steps_total": run.steps_total if run.steps_total is not None else -1,
            "gen_ai.request.model": model,
            "gen_ai.provider.name": self.provider,
        }
        if not self.batch:  # a batch's attempt starts no step: each item resumes its own
            attributes["unerring.first_step"] = run.next_step
        self.span = self.tracer.start_span("unerring run", attributes=attributes)
        self.context = trace.set_span_in_context(self.span)
        self._steps: dict[tuple[int, int], Span] = {}
        self._requests: dict[tuple[int, int, int], list[_Request]] = {}
        self._ids: dict[int, str] = {}  # item index -> id, while the item decides
        self._totals = {
            "steps": 0,
            "samples": 0,
            "input": 0,
            "output": 0,
            "failures": 0,
            "speculative": 0,
        }
        self._ended: dict[str, int] = {}
        self._cost = 0.0

    def item_attributes(self, item: int) -> dict[str, Any]:
        """A batch's spans name their item: its id, and its index in the run; a graph's,
        their node (its id, which is the item's)."""
        if not self.batch:
            return {}
        name = self._ids.get(item, str(item + 1))
        out: dict[str, Any] = {"unerring.item": name, "unerring.item_index": item}
        if self.graph:
            out["unerring.node"] = name
        return out

    # -- the runner and the backend side ------------------------------------------------
    def wrap(self, backend: Backend) -> Backend:
        return TracedBackend(backend, self)

    def step_context(self, item: int, step: int) -> Context:
        """The context of the step's span, opened by its first request."""
        span = self._steps.get((item, step))
        if span is None:
            span = self._steps[(item, step)] = self.tracer.start_span(
                "unerring step",
                context=self.context,
                attributes={"unerring.step": step, **self.item_attributes(item)},
            )
        return trace.set_span_in_context(span)

    def opened(self, request: SampleRequest, span: Span) -> _Request:
        r = _Request(span)
        key = (request.item, request.step, request.first_index)
        self._requests.setdefault(key, []).append(r)
        return r

    def closed(self, request: SampleRequest, r: _Request) -> None:
        key = (request.item, request.step, request.first_index)
        open_ = self._requests.get(key)
        if open_ is not None:
            open_.remove(r)
            if not open_:
                del self._requests[key]

    # -- scheduler events ----------------------------------------------------------------
    def on_item_start(self, x: ItemStart) -> None:
        self._ids[x.item] = x.item_id

    def on_decision(self, d: Decision) -> None:
        span = self._steps.pop((d.item, d.step), None)
        if span is None:  # a step decided without a request of ours (none today)
            start = time.time_ns() - int(d.elapsed_s * 1e9)
            span = self.tracer.start_span("unerring step", context=self.context, start_time=start)
        flags = d.flags or {}
        votes = sorted(d.votes.values(), reverse=True)
        attributes: dict[str, Any] = {
            "unerring.step": d.step,
            **self.item_attributes(d.item),
            "unerring.k": self.k,
            "unerring.samples": d.samples,
            "unerring.votes": votes,
            "unerring.contested": len(votes) > 1,
            "unerring.red_flags": sum(flags.values()),
            "unerring.cost": d.cost,
            "unerring.undecided": d.undecided,
            "unerring.elapsed_s": d.elapsed_s,
            "gen_ai.usage.input_tokens": d.prompt_tokens,
            "gen_ai.usage.output_tokens": d.completion_tokens,
        }
        for flag, count in flags.items():
            attributes[f"unerring.red_flags.{flag.value}"] = count
        if d.correct is not None:
            attributes["unerring.correct"] = d.correct
        if self.content and d.winner_text is not None:
            attributes["unerring.winner"] = _bounded(d.winner_text)
        span.set_attributes(attributes)
        if d.undecided:
            span.set_status(Status(StatusCode.ERROR, "undecided"))
        span.end()
        t = self._totals
        t["steps"] += 0 if d.state_after is None else 1
        t["samples"] += d.samples
        t["input"] += d.prompt_tokens
        t["output"] += d.completion_tokens
        self._cost += d.cost

    def on_discarded(self, x: Discarded) -> None:
        """A step opened on an answer that lost its vote: its span ends, marked discarded
        (its samples were paid for, never voted)."""
        t = self._totals
        t["speculative"] += x.samples
        t["input"] += x.prompt_tokens
        t["output"] += x.completion_tokens
        self._cost += x.cost
        span = self._steps.pop((x.item, x.step), None)
        if span is None:
            return
        span.set_attributes(
            {
                "unerring.step": x.step,
                "unerring.discarded": True,
                "unerring.samples": x.samples,
                "unerring.cost": x.cost,
                "gen_ai.usage.input_tokens": x.prompt_tokens,
                "gen_ai.usage.output_tokens": x.completion_tokens,
            }
        )
        span.end()

    def on_item_end(self, e: ItemEnd) -> None:
        self._ended[e.status] = self._ended.get(e.status, 0) + 1
        self._ids.pop(e.item, None)

    def on_transport_failure(self, f: TransportFailure) -> None:
        self._totals["failures"] += 1
        attributes: dict[str, Any] = {
            "error.type": f.kind,
            "unerring.attempt": f.attempt,
            "unerring.retried": f.retried,
            "unerring.step": f.step,
            "unerring.sample.first_index": f.first_index,
            **self.item_attributes(f.item),
        }
        open_ = self._requests.get((f.item, f.step, f.first_index))
        if not open_:  # not a request of ours: on the step, else on the run
            step = self._steps.get((f.item, f.step))
            (self.span if step is None else step).add_event("transport_failure", attributes)
            return
        # the newest with that name: an older one is a cancelled request not yet unwound,
        # which fails no more
        r = open_[-1]
        if f.retried:
            r.retries += 1
        r.span.add_event("transport_failure", attributes)

    def end(self, status: str, reason: str) -> None:
        for (item, step), span in self._steps.items():
            span.set_status(Status(StatusCode.ERROR, f"not decided: the run {status}"))
            span.set_attributes({"unerring.step": step, **self.item_attributes(item)})
            span.end()
        self._steps.clear()
        t = self._totals
        attributes: dict[str, Any] = {
            "unerring.status": status,
            "unerring.reason": _bounded(reason, REASON_LIMIT),
            "unerring.steps_decided": t["steps"],
            "unerring.samples": t["samples"],
            "unerring.speculative_samples": t["speculative"],
            "unerring.transport_failures": t["failures"],
            "unerring.cost": self._cost,
            "gen_ai.usage.input_tokens": t["input"],
            "gen_ai.usage.output_tokens": t["output"],
        }
        if self.batch:
            for s in ("completed", "stopped", "failed"):
                attributes[f"unerring.items_{s}"] = self._ended.get(s, 0)
        self.span.set_attributes(attributes)
        if status != "completed":
            self.span.set_status(Status(StatusCode.ERROR, status))
        self.span.end()
        # a CLI process ends after one attempt: what it traced leaves now, not at exit
        self.telemetry.provider.force_flush()


class TracedBackend(Wrapping):
    """A span per request: model, sample count, tokens, latency, retries, failure kind."""

    def __init__(self, inner: Backend, run: RunTracer) -> None:
        self.inner = inner
        self.run = run

    async def sample(self, request: SampleRequest) -> list[Sample]:
        run = self.run
        model = self.inner.model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": run.operation,
            "gen_ai.provider.name": run.provider,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": request.max_tokens,
            "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.choice.count": request.n,
            "unerring.step": request.step,
            "unerring.sample.first_index": request.first_index,
            **run.item_attributes(request.item),
        }
        if request.first_index == 0:
            attributes["unerring.first_temperature"] = request.first_temperature
        if run.content:
            if request.system:
                attributes["gen_ai.system_instructions"] = _bounded(request.system)
            attributes["gen_ai.input.messages"] = json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": _bounded(request.prompt)}]}]
            )
        span = run.tracer.start_span(
            f"{run.operation} {model}",
            context=run.step_context(request.item, request.step),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        entry = run.opened(request, span)
        t0 = time.perf_counter()
        try:
            out = await self.inner.sample(request)
        except TransportError as e:
            span.set_attribute("error.type", e.kind)
            span.set_status(Status(StatusCode.ERROR, e.kind))
            raise
        except BaseException as e:
            span.set_attribute("error.type", type(e).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(e).__qualname__))
            raise
        else:
            span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": sum(s.prompt_tokens or 0 for s in out),
                    "gen_ai.usage.output_tokens": sum(s.completion_tokens or 0 for s in out),
                }
            )
            if run.content:
                messages = [
                    {"role": "assistant", "parts": [{"type": "text", "content": _bounded(s.text)}]}
                    for s in out
                ]
                span.set_attribute("gen_ai.output.messages", json.dumps(messages))
            return out
        finally:
            span.set_attributes(
                {"unerring.latency_s": time.perf_counter() - t0, "unerring.retries": entry.retries}
            )
            run.closed(request, entry)
            span.end()
