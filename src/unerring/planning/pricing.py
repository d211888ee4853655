"""Prices per million input and output tokens, and the cost of what a run used (pure)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from unerring.backends.factory import Transport


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input (prompt) and output (completion) tokens."""

    input_per_m: float
    output_per_m: float

    def __post_init__(self) -> None:
        if self.input_per_m < 0 or self.output_per_m < 0:
            raise ValueError("a price must not be negative")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6


# list prices as published by the providers; local and simulated models cost nothing
BUILTIN_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "gpt-4.1": Price(2.00, 8.00),
        "gpt-4.1-mini": Price(0.40, 1.60),
        "gpt-4.1-nano": Price(0.10, 0.40),
        "gpt-4o": Price(2.50, 10.00),
        "gpt-4o-mini": Price(0.15, 0.60),
        "o3-mini": Price(1.10, 4.40),
        "o4-mini": Price(1.10, 4.40),
        "sim": Price(0.0, 0.0),
        "smollm2": Price(0.0, 0.0),
    }
)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Model name to price. A dated name ('gpt-4.1-mini-2025-04-14') takes the price of
    its longest listed prefix."""

    prices: Mapping[str, Price]

    @classmethod
    def default(cls) -> PriceTable:
        return cls(BUILTIN_PRICES)

    def extended(self, more: Mapping[str, Price]) -> PriceTable:
        return PriceTable(MappingProxyType({**self.prices, **more}))

    def lookup(self, model: str) -> Price | None:
        if model in self.prices:
            return self.prices[model]
        best = max((name for name in self.prices if model.startswith(name)), key=len, default=None)
        return None if best is None else self.prices[best]

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars for the tokens, or None when the model has no known price."""
        price = self.lookup(model)
        return None if price is None else price.cost(prompt_tokens, completion_tokens)


def parse_prices(data: object, source: str = "price file") -> dict[str, Price]:
    """Read {model: {input: $/M, output: $/M}}, optionally under a top-level 'prices' key."""
    if isinstance(data, Mapping) and isinstance(data.get("prices"), Mapping):
        data = data["prices"]
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a table of model = {{input, output}}")
    out: dict[str, Price] = {}
    for model, entry in data.items():
        if not isinstance(entry, Mapping) or set(entry) != {"input", "output"}:
            raise ValueError(
                f"{source}: model {model!r} needs exactly 'input' and 'output' "
                "(dollars per million tokens)"
            )
        try:
            out[str(model)] = Price(float(entry["input"]), float(entry["output"]))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: model {model!r}: {e}") from None
    return out


def load_prices(path: Path) -> dict[str, Price]:
    """Load a TOML or JSON price file (the format is chosen by the file's suffix)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read price file {path}: {e.strerror}") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"price file {path} is not valid: {e}") from None
    return parse_prices(data, str(path))


@dataclass(frozen=True, slots=True)
class Prices:
    """Dollars per token (not per million), input and output."""

    prompt: float = 0.0
    completion: float = 0.0


def price_table(transport: Transport | None = None) -> PriceTable:
    """The built-in prices, extended by the user's price file (or UNERRING_PRICES)."""
    table = PriceTable.default()
    path = (transport.prices_file if transport else None) or os.environ.get("UNERRING_PRICES")
    if path:
        table = table.extended(load_prices(Path(path)))
    return table
