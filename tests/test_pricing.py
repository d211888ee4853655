"""Price table: lookups, cost of tokens, and user price files."""

from __future__ import annotations

from pathlib import Path

import pytest

from unerring.planning.pricing import Price, PriceTable, load_prices, parse_prices


def test_cost_per_million_tokens() -> None:
    assert Price(0.40, 1.60).cost(1_000_000, 500_000) == pytest.approx(0.40 + 0.80)
    assert Price(0.40, 1.60).cost(0, 0) == 0.0


def test_dated_names_take_their_longest_prefix() -> None:
    table = PriceTable.default()
    assert table.lookup("gpt-4.1-mini-2025-04-14") == Price(0.40, 1.60)
    assert table.lookup("gpt-4o-mini-2024-07-18") == Price(0.15, 0.60)
    assert table.lookup("gpt-4o-2024-08-06") == Price(2.50, 10.00)
    assert table.lookup("my-local-llama") is None
    assert table.cost("my-local-llama", 10, 10) is None
    assert table.cost("gpt-4.1-nano", 2_000_000, 0) == pytest.approx(0.20)


def test_user_prices_extend_and_override(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text(
        '[prices."my-llama"]\ninput = 0.05\noutput = 0.25\n'
        '[prices."gpt-4.1-mini"]\ninput = 0.2\noutput = 0.8\n'
    )
    table = PriceTable.default().extended(load_prices(toml))
    assert table.lookup("my-llama") == Price(0.05, 0.25)
    assert table.lookup("gpt-4.1-mini") == Price(0.2, 0.8)
    assert table.lookup("gpt-4.1") == Price(2.00, 8.00)
    js = tmp_path / "prices.json"
    js.write_text('{"m": {"input": 1, "output": 2}}')
    assert load_prices(js) == {"m": Price(1.0, 2.0)}


@pytest.mark.parametrize(
    "data",
    [
        [1, 2],
        {"m": {"input": 1}},
        {"m": {"input": 1, "output": "x"}},
        {"m": {"input": -1, "output": 1}},
    ],
)
def test_bad_price_data_is_refused(data: object) -> None:
    with pytest.raises(ValueError):
        parse_prices(data)


def test_bad_price_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[prices\n")
    with pytest.raises(ValueError, match=r"p\.toml"):
        load_prices(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_prices(tmp_path / "missing.toml")
