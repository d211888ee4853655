"""One configuration: every option has one name and one place, is checked when the
configuration is made, and is recorded in the journal exactly as earlier versions wrote
it, so that their journals resume; a resume replaces only what was given."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

import unerring
from tests.helpers import child_env, cli, config, one_line_error
from unerring import defaults
from unerring.app.options import PLACES, RunConfig, configure
from unerring.app.recorded import config_difference, from_journal, recorded
from unerring.backends.spec import parse_model
from unerring.cli.main import build_parser, flags
from unerring.errors import UsageError
from unerring.planning.plan import VotingOptions
from unerring.tasks.hanoi import Hanoi
from unerring.tasks.registry import task_processes

# what the second build's RunOptions.config() wrote for `unerring run hanoi --disks 5`
# (key by key, in its order): a journal holds this, and a resume must read it as its own
SECOND_BUILD = {
    "task": "hanoi",
    "task_options": {"disks": 5},
    "model": "sim:error=0.01",
    "k": None,
    "target": 0.95,
    "error_rate": None,
    "first_temperature": 0.0,
    "temperature": 0.1,
    "max_tokens": 750,
    "max_samples_per_step": None,
    "on_undecided": "stop",
    "parallel": 1,
    "record": "contested",
    "api": "chat",
    "base_url": None,
    "notes": None,
    "max_depth": 32,
    "stopping": "ahead-by-k",
    "variants": [0],
    "unerring_version": "0.1.0",
}


def test_a_run_records_its_configuration_as_the_second_build_did() -> None:
    got = recorded(RunConfig(), task_processes("hanoi", {"disks": 5}))
    assert got == SECOND_BUILD and list(got) == list(SECOND_BUILD)


def test_a_recorded_configuration_reads_back_as_the_same_configuration() -> None:
    made = config(model="openai:m", api="completions", k=3, variants=(0, 2), base_url="http://h/v1")
    factory = task_processes("addition", {"digits": 4})
    again = from_journal(json.loads(json.dumps(recorded(made, factory))))
    assert recorded(again, factory) == recorded(made, factory)
    assert again.model.api == "completions" and again.voting.variants == (0, 2)


def test_an_old_journal_without_newer_options_reads_at_their_defaults() -> None:
    old = {"task": "hanoi", "task_options": {"disks": 3}, "model": "sim:error=0.05", "k": 2}
    again = from_journal(old)
    assert again.voting == VotingOptions(k=2)
    assert again.model.api == defaults.API and again.max_depth == defaults.MAX_DEPTH
    # the options it predates are at their defaults: no difference to refuse a resume on
    now = recorded(again, task_processes("hanoi", {"disks": 3}))
    assert config_difference(old, now) == []


def test_a_resume_replaces_only_what_is_given() -> None:
    journal = config(model="sim:error=0.2,seed=3", k=4, record="samples", temperature=0.3)
    resumed = configure(journal, {"concurrency": 2, "store": "s.db"})
    assert resumed.voting == journal.voting and resumed.model == journal.model
    assert resumed.session.transport.concurrency == 2 and resumed.session.store == "s.db"
    # each part is rebuilt once, the untouched ones are the very same objects
    assert resumed.voting is journal.voting and resumed.session.budget is journal.session.budget


def test_every_option_has_one_place_and_an_unknown_one_is_named() -> None:
    c = config(k=3, max_cost=2.0, timeout_s=5.0, max_outage_s=9.0, speculate=2, notes="nb")
    assert (c.voting.k, c.session.budget.max_cost, c.session.transport.timeout_s) == (3, 2.0, 5.0)
    assert c.session.transport.retry.max_outage_s == 9.0 and c.session.speculate == 2
    assert c.notes == "nb"
    with pytest.raises(UsageError, match=r"unknown option 'tempreature' \(known: .*temperature"):
        config(tempreature=0.5)


def test_the_model_is_parsed_once_and_carries_its_form() -> None:
    c = config(model="openai:a + 2*openai:b", api="completions")
    assert c.model.api == "completions"
    assert all(m.api == "completions" for _, m in c.model.members)
    assert c.model.label == "openai:a + 2*openai:b"  # the text as given: what is recorded
    assert configure(c, {"api": "chat"}).model.members[1][1].api == "chat"


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"k": 0}, "k must be at least 1, got 0"),
        ({"target": 1.5}, "target must be strictly between 0 and 1, got 1.5"),
        ({"record": "all"}, "record must be one of decisions, contested, samples, got 'all'"),
        ({"speculate": -1}, "speculate must not be negative, got -1"),
        ({"concurrency": 0}, "concurrency must be positive, got 0"),
        ({"max_cost": -1.0}, "max_cost must be a positive number, got -1.0"),
        ({"variants": (1, 1)}, "variants (1, 1): give distinct variant numbers from 0"),
    ],
)
def test_a_bad_option_is_refused_when_the_configuration_is_made(
    given: dict[str, Any], words: str
) -> None:
    with pytest.raises(UsageError) as e:
        config(**given)
    assert str(e.value) == words and e.value.params == tuple(given)


def test_the_library_names_the_parameter(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    with pytest.raises(UsageError, match=r"^k must be at least 1, got 0$"):
        unerring.run(Hanoi(3), k=0, store=str(store), run_id="r")
    with pytest.raises(UsageError, match=r"give k, or error_rate measured with"):
        unerring.run(Hanoi(3), model="openai:m", store=str(store), run_id="r")
    assert not store.exists()


def test_the_cli_names_the_flag(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    done = cli("run", "hanoi", "--k", "0", "--store", store)
    assert done.returncode == 2 and "--k: 0 must be at least 1" in done.stderr
    done = cli("run", "hanoi", "--model", "openai:m", "--store", store)
    assert done.returncode == 2
    assert "give --k, or --error-rate measured with" in one_line_error(done.stderr)
    done = cli("run", "hanoi", "--rpm", "0", "--store", store)
    assert one_line_error(done.stderr) == "unerring: error: --rpm must be positive, got 0.0"
    assert not Path(store).exists()


def test_every_parameter_a_message_may_name_is_a_flag_of_the_cli() -> None:
    flag_of = flags(build_parser())
    assert flag_of["timeout_s"] == "--timeout" and flag_of["requests_per_min"] == "--rpm"
    assert flag_of["faults"] == "--inject-faults" and flag_of["prices_file"] == "--prices"
    # every option by its one name, but those no flag sets (tests and the library set them)
    unflagged = {"prices", "window", "max_pages", "handle_signals", "budget", "transport"}
    assert set(PLACES) - set(flag_of) == unflagged


def test_an_unknown_library_keyword_is_one_line_naming_the_known() -> None:
    with pytest.raises(UsageError) as e:
        unerring.run(Hanoi(3), tempreature=0.5)  # type: ignore[call-arg]
    assert "run() takes no keyword 'tempreature' (known: " in str(e.value)
    assert "temperature" in str(e.value) and "\n" not in str(e.value)


def test_the_library_layers_know_no_task_by_name() -> None:
    # only the CLI turns a task name into a process: the app, analysis and the API run
    # the processes they are handed
    src = Path(unerring.__file__).parent
    for path in [*src.glob("app/*.py"), *src.glob("analysis/*.py"), src / "api.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.startswith("unerring.tasks")], path


def test_the_defaults_are_read_from_one_place() -> None:
    assert parse_model(defaults.MODEL) == RunConfig().model
    assert VotingOptions().target == defaults.TARGET
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    assert f"default {defaults.MODEL}" in help_text
    assert f"default {defaults.MAX_TOKENS}" in help_text


def test_the_version_reads_without_importing_the_package(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import sys, unerring._version as v; print(v.__version__, 'unerring.api' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env()
    )
    assert done.stdout.split() == [unerring.__version__, "False"]
