"""`--model` specs for real models, and the resilience stack every backend is wrapped in."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping

import pytest

from tests.helpers import child_env
from unerring.backends.factory import Transport, base_url, make_backend
from unerring.backends.faults import FaultInjecting
from unerring.backends.openai import OpenAICompatible
from unerring.backends.resilience import Limited, Retrying, RetryPolicy, TransportFailure
from unerring.backends.secrets import Redacting
from unerring.backends.sim import SimBackend
from unerring.backends.spec import parse_model
from unerring.core.samples import SampleRequest


def test_openai_spec() -> None:
    spec = parse_model("openai:gpt-4.1-mini")
    assert (spec.provider, spec.name, spec.text) == (
        "openai",
        "gpt-4.1-mini",
        "openai:gpt-4.1-mini",
    )
    with pytest.raises(ValueError, match="PROVIDER:NAME"):
        parse_model("openai:")


def test_stack_order_faults_innermost_retries_outermost() -> None:
    b = make_backend(parse_model("sim:error=0"), Transport(faults="reset=0.1", requests_per_min=60))
    assert isinstance(b, Retrying) and isinstance(b.inner, Limited)
    assert isinstance(b.inner.inner, FaultInjecting) and isinstance(b.inner.inner.inner, SimBackend)


def test_openai_backend_reads_the_key_from_the_named_variable() -> None:
    env = {"MY_KEY": "sk-test-PLANTED-0000", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    b = make_backend(parse_model("openai:m"), Transport(api_key_env="MY_KEY"), env=env)
    # a stack that knows a key masks it where the stack's errors leave it
    assert isinstance(b, Redacting) and isinstance(b.inner, Retrying)
    inner = b.inner.inner.inner  # type: ignore[attr-defined]
    assert isinstance(inner, OpenAICompatible)
    assert inner.config.base_url == "http://127.0.0.1:9/v1"
    assert inner._client.headers["authorization"] == "Bearer sk-test-PLANTED-0000"
    assert "PLANTED" not in repr(inner) and "PLANTED" not in repr(b)
    asyncio.run(b.aclose())


def test_base_url_precedence() -> None:
    env: Mapping[str, str] = {"UNERRING_BASE_URL": "http://a/v1", "OPENAI_BASE_URL": "http://b/v1"}
    assert base_url(Transport(base_url="http://c/v1"), env) == "http://c/v1"
    assert base_url(Transport(), env) == "http://a/v1"
    assert base_url(Transport(), {"OPENAI_BASE_URL": "http://b/v1"}) == "http://b/v1"
    assert base_url(Transport(), {}) == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    "kwargs",
    [{"n_mode": "sometimes"}, {"timeout_s": 0}, {"concurrency": 0}, {"requests_per_min": -1},
     {"faults": "timeout=7"}, {"api_key_env": " "}],
)  # fmt: skip
def test_bad_transport_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Transport(**kwargs)  # type: ignore[arg-type]


def test_a_bad_api_form_is_refused() -> None:
    # the form a model is asked in is the model's (it can change answers), not transport's
    with pytest.raises(ValueError, match="api must be chat or completions, got 'rest'"):
        parse_model("openai:m", "rest")  # type: ignore[arg-type]


def test_simulated_model_runs_through_injected_faults() -> None:
    failures: list[TransportFailure] = []
    b = make_backend(
        parse_model("sim:error=0"),
        Transport(faults="server_error=0.5", fault_seed=3, retry=RetryPolicy(base_s=0.0)),
        on_failure=failures.append,
    )  # fmt: skip

    class Oracle:
        def correct(self) -> str:
            return "right"

        def wrong(self, variant: int) -> str:
            return "wrong"

        def features(self) -> Mapping[str, int | str | bool]:
            return {}

    async def go() -> list[str]:
        out = []
        for step in range(10):
            req = SampleRequest("p", step, 0, 2, 10, oracle=Oracle())
            out += [s.text for s in await b.sample(req)]
        return out

    assert asyncio.run(go()) == ["right"] * 20
    assert failures and all(f.kind == "server_error" for f in failures)


def test_a_fault_free_simulated_model_has_no_retry_layer() -> None:
    # it cannot fail, so the step loop skips the retry frames; faults or a timeout bring
    # the layer back
    assert isinstance(make_backend(parse_model("sim:error=0")), SimBackend)
    assert isinstance(
        make_backend(parse_model("sim:error=0"), Transport(faults="reset=0.1")), Retrying
    )
    timed = Transport(retry=RetryPolicy(timeout_s=5.0))
    assert isinstance(make_backend(parse_model("sim:error=0"), timed), Retrying)


def test_a_simulated_run_never_loads_the_http_client() -> None:
    # the HTTP client (httpx, with ssl and email) is a quarter of the CLI's start, and of
    # every Ray actor's: a run on the simulated model does without it; a model served over
    # HTTP loads it when its backend is made
    code = (
        "import sys, unerring\n"
        "from unerring.tasks.hanoi import Hanoi\n"
        "from unerring.backends.factory import Transport, make_backend\n"
        "from unerring.backends.spec import parse_model\n"
        "r = unerring.run(Hanoi(disks=3), model='sim:error=0.1', k=2)\n"
        "assert r.summary['steps_decided'] == 7\n"
        "print('httpx' in sys.modules)\n"
        "make_backend(parse_model('openai:m'), Transport(base_url='http://127.0.0.1:9/v1'),\n"
        "             env={'OPENAI_API_KEY': 'sk-test-fake'})\n"
        "print('httpx' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
