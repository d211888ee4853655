"""Against a real OpenAI-compatible server with a real model (llama-cpp-python, SmolLM2-135M).

The server is started once for the module, bound to 127.0.0.1, and stopped by its PID. If
it cannot start the tests fail with the reason: they are never skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import Reply, fake_openai
from tests.fault_proxy import fault_proxy
from tests.helpers import run_task
from tests.llama_server import ALIAS, ServerUnavailable, llama_server
from unerring.app.result import RunResult
from unerring.backends.factory import Transport
from unerring.backends.openai import OpenAICompatible
from unerring.backends.openai_config import OpenAIConfig
from unerring.backends.resilience import RetryPolicy
from unerring.cli.main import main
from unerring.core.samples import SampleRequest
from unerring.voting.config import Budget

pytestmark = pytest.mark.real_server

KEY = "sk-test-PLANTED-0000"
FAST_RETRY = RetryPolicy(base_s=0.01, cap_s=0.05, timeout_s=30.0)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    try:
        with llama_server() as url:
            yield url
    except ServerUnavailable as e:
        pytest.fail(f"the real model server is not usable here: {e}", pytrace=False)


def _sample(url: str, api: str, request: SampleRequest) -> list[Any]:
    async def go() -> list[Any]:
        b = OpenAICompatible(OpenAIConfig(ALIAS, url, api=api, stop=("\n",)), api_key=KEY)  # type: ignore[arg-type]
        try:
            return await b.sample(request)
        finally:
            await b.aclose()

    return asyncio.run(go())


def _run(
    url: str, store: str, digits: int = 6, k: int = 1, run_id: str | None = None, **session: Any
) -> RunResult:
    options = dict(
        task="addition",
        task_options={"digits": digits, "max_digit": 9, "seed": 5},
        model=f"openai:{ALIAS}",
        k=k,
        max_tokens=8,
        api="completions",
    )
    transport = session.pop("transport", Transport(base_url=url))
    s = dict(store=store, handle_signals=False, transport=transport, **session)
    return run_task(**options, **s, run_id=run_id, resume=run_id is not None)


def test_chat_and_completion_calls(server: str) -> None:
    req = SampleRequest("3 + 4 = 7\n2 + 5 =", step=0, first_index=0, n=1, max_tokens=8)
    (done,) = _sample(server, "completions", req)
    assert done.text.strip().isdigit()
    assert done.prompt_tokens and done.prompt_tokens > 5 and done.completion_tokens
    chat = SampleRequest("Say hello.", 0, 0, 1, 16, system="You are terse.")
    (said,) = _sample(server, "chat", chat)
    assert said.text.strip() and said.prompt_tokens and said.completion_tokens


def test_n_samples_arrive_in_index_order(server: str) -> None:
    req = SampleRequest("1 + 1 = 2\n3 + 3 =", 4, first_index=2, n=3, max_tokens=8, temperature=0.7)
    got = _sample(server, "completions", req)
    # llama-cpp-python answers one choice whatever `n` says: auto mode tops up the rest
    assert len(got) == 3  # samples 2, 3 and 4, in that order
    assert all(s.completion_tokens for s in got)


def test_usage_cost_and_token_budget(server: str, tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(f'[prices."{ALIAS}"]\ninput = 1.0\noutput = 2.0\n')
    store = str(tmp_path / "runs.db")
    t = Transport(base_url=server, prices_file=str(prices), retry=FAST_RETRY)
    first = _run(server, store, transport=t, budget=Budget(max_tokens_total=300))
    s = first.summary
    assert first.outcome.status == "stopped" and "token budget" in first.outcome.reason
    assert 300 <= s["prompt_tokens"] + s["completion_tokens"] < 300 + 200
    assert s["cost"] == pytest.approx((s["prompt_tokens"] + 2 * s["completion_tokens"]) / 1e6)
    first.store.close()
    # resumable with a larger cap: finishes, and no decided step is sampled again
    again = _run(
        server, store, transport=t, budget=Budget(max_tokens_total=10**6), run_id=first.run.run_id
    )
    assert again.outcome.status == "completed"
    assert again.summary["steps_decided"] == again.run.steps_total
    steps = [row["step"] for row in again.store.decisions(again.run)]
    assert steps == list(range(again.run.steps_total))
    again.store.close()


def test_overlong_real_response_is_red_flagged(server: str) -> None:
    options = dict(
        task="hanoi",
        task_options={"disks": 2},
        model=f"openai:{ALIAS}",
        api="chat",
        k=1,
        max_tokens=3,
        max_samples_per_step=2,
    )
    s = dict(
        store=":memory:",
        handle_signals=False,
        transport=Transport(base_url=server, retry=FAST_RETRY),
    )
    result = run_task(**options, **s)
    # the chat model rambles on past 3 tokens: discarded as overlong, never voted; a step
    # whose first 2 x k samples are all red-flagged ends its item, naming the flag
    assert result.summary["flags"].get("overlong", 0) >= 1
    assert result.outcome.status == "failed", result.outcome.reason
    assert "red-flagged" in result.outcome.reason and "overlong" in result.outcome.reason


def _winners(result: RunResult) -> list[str]:
    return [row["winner"] for row in result.store.decisions(result.run)]


def test_faults_on_the_wire_leave_the_run_correct(server: str, tmp_path: Path) -> None:
    clean = _run(server, str(tmp_path / "clean.db"), digits=8)
    rates = {"reset": 0.12, "server_error": 0.1, "rate_limit": 0.1, "truncated": 0.1, "slow": 0.05}
    with fault_proxy(server.rsplit("/v1", 1)[0], rates, seed=2) as proxy:
        t = Transport(base_url=proxy.url, retry=FAST_RETRY)
        faulty = _run(server, str(tmp_path / "faulty.db"), digits=8, transport=t)
    assert sum(proxy.counts.values()) >= 5, proxy.counts
    assert faulty.outcome.status == "completed"
    # greedy first samples with k=1: the faults cost retries, never a different decision
    assert _winners(faulty) == _winners(clean)
    assert faulty.summary["errors"] == clean.summary["errors"]
    failures = list(faulty.store.transport_failures(faulty.run))
    assert faulty.summary["transport_failures"] == len(failures) >= 5
    assert {f["kind"] for f in failures} >= {"reset", "server_error", "rate_limit"}


def _echo_key(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
    echo = {"error": {"message": f"invalid key in {headers.get('authorization')}"}}
    return 401, {"Content-Type": "application/json"}, json.dumps(echo).encode()


def test_api_key_never_appears_anywhere(
    server: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    store = tmp_path / "runs.db"
    rates = {"reset": 0.15, "server_error": 0.15, "truncated": 0.1}
    with fault_proxy(server.rsplit("/v1", 1)[0], rates, seed=9) as proxy:
        code = main(
            [
                "run",
                "addition",
                "--digits",
                "5",
                "--model",
                f"openai:{ALIAS}",
                "--api",
                "completions",
                "--base-url",
                proxy.url,
                "--k",
                "1",
                "--store",
                str(store),
                "--json",
            ]
        )
    assert code == 0
    # a careless server that echoes the key back in its 401: the message is scrubbed
    with fake_openai(_echo_key) as fake:
        failed = main(["run", "addition", "--model", "openai:m", "--api", "completions",
                       "--base-url", fake.url, "--k", "1",
                       "--store", str(tmp_path / "b.db")])  # fmt: skip
    assert failed == 1
    out = capsys.readouterr()
    texts = [out.out, out.err, caplog.text]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.iterdir() if p.is_file()]
    assert "HTTP 401" in out.err and "***" in out.err
    summary = json.loads(out.out.splitlines()[0])
    assert summary["status"] == "completed" and summary["transport_failures"] > 0
    for text in texts:
        assert KEY not in text


def test_a_batch_of_twenty_additions_with_four_requests_in_flight(
    server: str, tmp_path: Path
) -> None:
    from unerring.app.options import BatchItem

    options = dict(
        task="addition",
        task_options={"digits": 3, "max_digit": 4, "seed": 0},
        model=f"openai:{ALIAS}",
        k=1,
        max_tokens=8,
        api="completions",
    )
    batch = [BatchItem(str(i), {"digits": 3, "max_digit": 4, "seed": i}) for i in range(1, 21)]
    s = dict(
        store=str(tmp_path / "batch.db"),
        handle_signals=False,
        transport=Transport(base_url=server, concurrency=4, retry=FAST_RETRY),
    )
    result = run_task(**options, **s, run_id="b", batch=batch)
    assert result.outcome.status == "completed", result.outcome.reason
    summary = result.summary
    assert (summary["items"], summary["items_completed"]) == (20, 20)
    assert summary["steps_decided"] == summary["steps_total"] >= 20 * 3
    assert summary["errors"] is not None and summary["prompt_tokens"] > 0
    items = list(result.store.items(result.run))
    # every item decided every one of its steps, once, in order
    for it in items:
        steps = [d["step"] for d in result.store.decisions(result.run, item=it.item)]
        assert steps == list(range(it.steps_total or 0))
    result.store.close()


def test_a_graph_runs_on_the_real_model(server: str, tmp_path: Path) -> None:
    # multiply 2 digits by 2: two partial products side by side, then their sum; the
    # small model may well get the product wrong, but every node is decided and journaled
    options = dict(
        task="multiply",
        task_options={"digits": 2, "max_digit": 4, "seed": 1},
        model=f"openai:{ALIAS}",
        k=1,
        max_tokens=8,
        api="completions",
    )
    s = dict(
        store=str(tmp_path / "graph.db"),
        handle_signals=False,
        transport=Transport(base_url=server, concurrency=4, retry=FAST_RETRY),
    )
    result = run_task(**options, **s, run_id="g")
    assert result.outcome.status == "completed", result.outcome.reason
    assert result.summary["nodes"] == 3
    assert result.summary["result_correct"] in (True, False)
    nodes = list(result.store.items(result.run))
    assert [n.status for n in nodes] == ["completed"] * 3
    assert all(n.output is not None for n in nodes)
    result.store.close()
