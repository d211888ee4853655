"""OpenTelemetry: a span per run, per decided step and per model request, checked with the
SDK's in-memory exporter and with a real OTLP/HTTP receiver on 127.0.0.1 that decodes the
protobuf that arrives. Prompts and keys stay out of spans unless content is asked for."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.fake_openai import Reply, completion_reply, fake_openai
from tests.helpers import child_env, run_task
from tests.loopback import serving
from unerring.app.options import BatchItem
from unerring.backends.factory import Transport
from unerring.backends.resilience import RetryPolicy
from unerring.cli import otel_opts
from unerring.tasks.hanoi import Hanoi
from unerring.telemetry import requested
from unerring.telemetry.otel import Telemetry

KEY = "sk-test-PLANTED-otel-0000"
FAST_RETRY = RetryPolicy(base_s=0.001, cap_s=0.002)


def _traced(
    *, content: bool = False, faults: str | None = None, model: str = "sim:error=0.2,seed=3"
) -> tuple[Any, list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    options = dict(task="hanoi", task_options={"disks": 4}, model=model, k=2)
    session = dict(
        transport=Transport(faults=faults, retry=FAST_RETRY),
        handle_signals=False,
        watch=Telemetry(provider, content=content),
    )
    result = run_task(**options, **session, run_id="traced")
    return result, list(exporter.get_finished_spans())


def _by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_spans_per_run_step_and_request_match_the_journal() -> None:
    result, spans = _traced(faults="server_error=0.15")
    names = _by_name(spans)
    (run,) = names["unerring run"]
    steps = names["unerring step"]
    requests = names["chat sim"]
    assert len(steps) == 15 == result.summary["steps_decided"]
    ra = _attrs(run)
    assert ra["unerring.run_id"] == "traced" and ra["unerring.k"] == 2
    assert ra["unerring.status"] == "completed" and run.status.status_code != StatusCode.ERROR
    assert ra["unerring.samples"] == result.summary["samples"]
    assert ra["gen_ai.usage.input_tokens"] == result.summary["prompt_tokens"]
    # every step is a child of the run, every request a child of its step
    run_id = run.context.span_id
    step_of = {s.context.span_id: _attrs(s)["unerring.step"] for s in steps}
    assert all(s.parent is not None and s.parent.span_id == run_id for s in steps)
    assert all(r.parent is not None and r.parent.span_id in step_of for r in requests)
    journal = {d["step"]: d for d in result.decisions()}
    tokens: dict[int, int] = {}
    for r in requests:
        a = _attrs(r)
        assert step_of[r.parent.span_id] == a["unerring.step"]  # type: ignore[union-attr]
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "unerring.sim"
        assert a["unerring.latency_s"] >= 0
        tokens[a["unerring.step"]] = tokens.get(a["unerring.step"], 0) + a.get(
            "gen_ai.usage.input_tokens", 0
        )
    for s in steps:
        a = _attrs(s)
        d = journal[a["unerring.step"]]
        assert a["unerring.samples"] == d["samples"]
        assert a["gen_ai.usage.input_tokens"] == d["prompt_tokens"] == tokens[d["step"]]
        assert a["gen_ai.usage.output_tokens"] == d["completion_tokens"]
        assert a["unerring.votes"] == tuple(d["votes"])  # decoded, as exported
        assert a["unerring.undecided"] is False and a["unerring.k"] == 2
        assert "unerring.item" not in a and "unerring.node" not in a  # chains have neither
    # each journaled transport failure is an event on the request it hit; retries counted
    failures = result.summary["transport_failures"]
    assert failures > 0
    events = [e for r in requests for e in r.events if e.name == "transport_failure"]
    assert len(events) == failures
    assert all(e.attributes and e.attributes["error.type"] == "server_error" for e in events)
    assert sum(_attrs(r)["unerring.retries"] for r in requests) == failures


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_graph_step_span_names_its_node() -> None:
    # a graph's nodes each count steps from 0: a span without its node would be ambiguous
    provider, exporter = _provider()
    options = dict(task="multiply", task_options={"digits": 3}, model="sim:error=0.1", k=2)
    session = dict(handle_signals=False, watch=Telemetry(provider))
    result = run_task(**options, **session, run_id="traced-graph")
    assert result.outcome.status == "completed", result.outcome.reason
    names = _by_name(list(exporter.get_finished_spans()))
    (run,) = names["unerring run"]
    assert _attrs(run)["unerring.kind"] == "graph"
    steps = [_attrs(s) for s in names["unerring step"]]
    assert len(steps) == result.summary["steps_decided"]
    nodes = {it.item_id: it for it in result.store.items(result.run)}
    places = {(a["unerring.node"], a["unerring.step"]) for a in steps}
    assert len(places) == len(steps)  # one span per (node, step)
    for a in steps:
        assert a["unerring.item"] == a["unerring.node"] in nodes
        assert a["unerring.item_index"] == nodes[a["unerring.node"]].item
    assert {a["unerring.node"] for a in steps} == set(nodes)


def test_a_batch_with_many_requests_in_flight_attributes_each_retry_to_its_request() -> None:
    """A model that takes time: one request per sample, the steps of many items at once,
    faults on some. Every step span names its item; every failure lands on the request
    that failed (item, step, first index), and retries add up to the journal's."""
    provider, exporter = _provider()
    options = dict(
        task="hanoi", task_options={"disks": 3}, model="sim:error=0.2,seed=5,latency=1", k=2
    )
    batch = [BatchItem(f"item-{i}", {"disks": 3 + i % 2}) for i in range(6)]
    session = dict(
        transport=Transport(faults="server_error=0.2", retry=FAST_RETRY, concurrency=16),
        handle_signals=False,
        watch=Telemetry(provider),
    )
    result = run_task(**options, **session, run_id="traced-batch", batch=batch)
    assert result.outcome.status == "completed", result.outcome.reason
    names = _by_name(list(exporter.get_finished_spans()))
    (run,) = names["unerring run"]
    ra = _attrs(run)
    assert ra["unerring.kind"] == "batch" and "unerring.first_step" not in ra
    assert ra["unerring.items_completed"] == 6 and ra["unerring.items_failed"] == 0
    steps = names["unerring step"]
    requests = names["chat sim"]
    assert len(steps) == result.summary["steps_decided"] == 3 * 7 + 3 * 15
    place = {
        s.context.span_id: (_attrs(s)["unerring.item"], _attrs(s)["unerring.step"]) for s in steps
    }
    assert len(set(place.values())) == len(steps)  # one span per (item, step)
    journal = {}
    for it in result.store.items(result.run):
        for d in result.store.decisions(result.run, item=it.item):
            journal[(it.item_id, d["step"])] = d
    assert set(place.values()) == set(journal)
    for s in steps:
        a = _attrs(s)
        d = journal[(a["unerring.item"], a["unerring.step"])]
        assert a["unerring.samples"] == d["samples"] and a["unerring.votes"] == tuple(
            json.loads(d["votes"])
        )
    # one request per sample: many per step, each a child of its own item's step
    assert len(requests) > len(steps)
    for r in requests:
        a = _attrs(r)
        assert r.parent is not None
        assert place[r.parent.span_id] == (a["unerring.item"], a["unerring.step"])
        assert a["gen_ai.request.choice.count"] == 1
    failures = result.summary["transport_failures"]
    assert failures > 5
    hit = 0
    for r in requests:
        a = _attrs(r)
        events = [e for e in r.events if e.name == "transport_failure"]
        for e in events:
            ea = dict(e.attributes or {})
            assert (
                ea["unerring.item"],
                ea["unerring.step"],
                ea["unerring.sample.first_index"],
            ) == (
                a["unerring.item"],
                a["unerring.step"],
                a["unerring.sample.first_index"],
            )
        assert a["unerring.retries"] == sum(1 for e in events if e.attributes["unerring.retried"])  # type: ignore[index]
        hit += len(events)
    assert hit == failures  # none fell back to a step or the run
    assert not [e for s in (*steps, run) for e in s.events]


def test_speculation_discarded_is_a_step_span_of_its_own() -> None:
    provider, exporter = _provider()
    options = dict(
        task="hanoi", task_options={"disks": 5}, model="sim:error=0.3,seed=2,latency=1", k=2
    )
    session = dict(handle_signals=False, speculate=2, watch=Telemetry(provider))
    result = run_task(**options, **session, run_id="spec")
    assert result.outcome.status == "completed"
    names = _by_name(list(exporter.get_finished_spans()))
    steps = names["unerring step"]
    decided = [s for s in steps if not _attrs(s).get("unerring.discarded")]
    thrown = [s for s in steps if _attrs(s).get("unerring.discarded")]
    assert len(decided) == 31 == len({_attrs(s)["unerring.step"] for s in decided})
    assert thrown  # at 30% errors some step was opened on an answer that lost
    assert all(s.status.status_code != StatusCode.ERROR for s in steps)
    (run,) = names["unerring run"]
    spec = result.summary["speculative_samples"]
    assert (
        _attrs(run)["unerring.speculative_samples"]
        == spec
        == sum(_attrs(s)["unerring.samples"] for s in thrown)
    )


def test_prompts_stay_out_of_spans_unless_content_is_asked_for() -> None:
    process = Hanoi(4)
    prompt = process.prompt(process.initial_state(), 0)
    system = process.system()
    assert system  # the shared instructions travel separately: both must stay out

    def texts(spans: list[ReadableSpan]) -> str:
        return json.dumps([_attrs(s) for s in spans], default=str)

    _, plain = _traced()
    dumped = texts(plain)
    assert prompt not in dumped and system[:60] not in dumped
    assert "gen_ai.input.messages" not in dumped
    _, full = _traced(content=True)
    first = next(
        s
        for s in full
        if s.name == "chat sim"
        and _attrs(s)["unerring.step"] == 0
        and _attrs(s)["unerring.sample.first_index"] == 0
    )
    messages = json.loads(_attrs(first)["gen_ai.input.messages"])
    assert messages[0]["parts"][0]["content"] == prompt
    assert _attrs(first)["gen_ai.system_instructions"] == system
    assert json.loads(_attrs(first)["gen_ai.output.messages"])


def test_a_failed_run_says_so_on_its_run_span_and_request() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    options = dict(task="addition", task_options={"digits": 2}, model="openai:m", k=1)
    session = dict(
        transport=Transport(base_url="http://127.0.0.1:9/v1", retry=FAST_RETRY),
        handle_signals=False,
        watch=Telemetry(provider),
    )
    result = run_task(**options, **session, run_id="down")
    assert result.summary["status"] == "failed"
    names = _by_name(list(exporter.get_finished_spans()))
    (run,) = names["unerring run"]
    assert run.status.status_code == StatusCode.ERROR
    assert _attrs(run)["unerring.status"] == "failed"
    (request,) = names["chat m"]
    assert _attrs(request)["error.type"] == "unreachable"
    assert request.status.status_code == StatusCode.ERROR
    (step,) = names["unerring step"]  # opened by the request, closed by the run's end
    assert step.status.status_code == StatusCode.ERROR


def test_traces_are_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    args = argparse.Namespace(otel=False, otel_content=False)
    assert otel_opts.watch(args) is None
    assert requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not requested({"OTEL_TRACES_EXPORTER": "none"})
    assert not requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})


# -- a real OTLP/HTTP receiver ----------------------------------------------------------


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[bytes], list[ExportTraceServiceRequest]]]:
    raw: list[bytes] = []
    decoded: list[ExportTraceServiceRequest] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces" or "protobuf" not in self.headers["Content-Type"]:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            with lock:
                raw.append(body)
                decoded.append(request)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with serving(Handler) as url:
        yield url.removesuffix("/v1"), raw, decoded


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind)


def _received(decoded: list[ExportTraceServiceRequest]) -> tuple[list[dict[str, Any]], set[str]]:
    spans = []
    services = set()
    for req in decoded:
        for rs in req.resource_spans:
            for a in rs.resource.attributes:
                if a.key == "service.name":
                    services.add(_value(a.value))
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {a.key: _value(a.value) for a in s.attributes}
                    spans.append(
                        {
                            "name": s.name,
                            "id": s.span_id,
                            "parent": s.parent_span_id,
                            "trace": s.trace_id,
                            "attrs": attrs,
                        }
                    )
    return spans, services


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unerring", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _otel_env(endpoint: str) -> dict[str, str]:
    env = child_env()
    for name in list(env):
        if name.startswith("OTEL_"):
            del env[name]
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    env["OTEL_BSP_SCHEDULE_DELAY"] = "50"
    env[KEY_ENV] = KEY
    return env


KEY_ENV = "OPENAI_API_KEY"


def _sums(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
    a, b = body["prompt"].rsplit("\n", 1)[1].rstrip("=").split("+")
    status, headers, raw = completion_reply(path, body, h)
    data = json.loads(raw)
    for c in data["choices"]:
        c["text"] = f" {int(a) + int(b)}"
    return status, headers, json.dumps(data).encode()


def test_a_real_otlp_receiver_gets_the_run_from_the_environment(tmp_path: Path) -> None:
    with fake_openai(_sums) as model, otlp_receiver() as (endpoint, raw, decoded):
        run = ["run", "addition", "--digits", "3", "--model", "openai:m", "--api",
               "completions", "--base-url", model.url, "--k", "1", "--store",
               str(tmp_path / "runs.db"), "--json", "--run-id", "otlp"]  # fmt: skip
        done = _cli(run, _otel_env(endpoint))  # OTEL_EXPORTER_OTLP_ENDPOINT alone turns it on
        assert done.returncode == 0, done.stderr
        prompt = model.requests[0][1]["prompt"]
    summary = json.loads(done.stdout)
    spans, services = _received(decoded)
    assert services == {"unerring"}
    runs = [s for s in spans if s["name"] == "unerring run"]
    steps = [s for s in spans if s["name"] == "unerring step"]
    requests = [s for s in spans if s["name"] == "text_completion m"]
    assert len(runs) == 1 and len(steps) == summary["steps_decided"] >= 3
    assert {s["parent"] for s in steps} == {runs[0]["id"]}
    assert {r["parent"] for r in requests} <= {s["id"] for s in steps}
    assert len({s["trace"] for s in spans}) == 1
    assert runs[0]["attrs"]["unerring.run_id"] == "otlp"
    assert runs[0]["attrs"]["gen_ai.usage.input_tokens"] == summary["prompt_tokens"]
    assert all(r["attrs"]["gen_ai.request.model"] == "m" for r in requests)
    assert (
        sum(r["attrs"]["gen_ai.usage.output_tokens"] for r in requests)
        == summary["completion_tokens"]
    )
    wire = b"".join(raw)
    assert KEY.encode() not in wire  # the key never leaves in a span
    # nor the prompt, unless asked for: neither as it is nor escaped in a JSON value
    head = "\n".join(prompt.splitlines()[:2])
    assert head.encode() not in wire and json.dumps(head)[1:-1].encode() not in wire
    assert not any(head in str(v) for s in spans for v in s["attrs"].values())


def test_otel_content_sends_prompts_to_the_receiver(tmp_path: Path) -> None:
    with fake_openai(_sums) as model, otlp_receiver() as (endpoint, raw, decoded):
        env = _otel_env("http://127.0.0.1:9")  # overridden by the traces endpoint below
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = endpoint + "/v1/traces"
        run = ["run", "addition", "--digits", "2", "--model", "openai:m", "--api",
               "completions", "--base-url", model.url, "--k", "1", "--store", ":memory:",
               "--json", "--otel", "--otel-content"]  # fmt: skip
        done = _cli(run, env)
        assert done.returncode == 0, done.stderr
        prompt = model.requests[0][1]["prompt"]
    spans, _ = _received(decoded)
    sent = [s["attrs"].get("gen_ai.input.messages", "") for s in spans]
    assert any(prompt in json.loads(m)[0]["parts"][0]["content"] for m in sent if m)
    assert KEY.encode() not in b"".join(raw)


def test_otel_without_the_extra_is_one_line_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    blocker.mkdir()
    # a package named opentelemetry that fails to import stands for the missing extra
    (blocker / "opentelemetry").mkdir()
    (blocker / "opentelemetry" / "__init__.py").write_text("raise ImportError('absent')\n")
    env = child_env()
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    done = _cli(["run", "hanoi", "--disks", "3", "--store", ":memory:", "--otel"], env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "pip install 'unerring[otel]'" in lines[0]
