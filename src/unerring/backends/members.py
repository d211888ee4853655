"""A model's own endpoint and key variable, for ensemble members on servers of their own.

`--model openai:NAME@URL` sends that model's requests to URL (ending in /v1) instead of the
run's `--base-url`; `--model openai:NAME@URL#VAR` also reads its key from the environment
variable VAR instead of `--api-key-env`. The key itself is never part of a spec, so never
part of the journal; `#` starts no part of a request (a URL fragment is never sent), so it
cannot be mistaken for the URL's own text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from unerring.backends.openai_config import OpenAIConfig
from unerring.backends.secrets import key_problem
from unerring.errors import UsageError

_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one model is served: its base URL and the variable holding its key (None:
    the run's --api-key-env)."""

    base_url: str
    key_env: str | None = None


def split_endpoint(rest: str) -> tuple[str, Endpoint | None]:
    """`NAME`, `NAME@URL` or `NAME@URL#VAR` -> (name, endpoint or None); UsageError says
    what is wrong (UsageError). An `@` not followed by http:// or https:// belongs to the name."""
    at = max(rest.rfind("@http://"), rest.rfind("@https://"))
    if at < 0:
        if "#" in rest:
            raise UsageError(
                f"{rest!r}: a key variable (#VAR) follows an endpoint: openai:NAME@URL#VAR"
            )
        return rest.strip(), None
    name, where = rest[:at].strip(), rest[at + 1 :].strip()
    url, hash_, var = where.partition("#")
    if not name:
        raise UsageError(f"{rest!r}: the model name before @ is empty")
    if hash_ and not _VAR.match(var):
        raise UsageError(
            f"{rest!r}: after # comes the name of the environment variable holding the key "
            f"(letters, digits, _), got {var!r}"
        )
    try:  # refuses a bad URL, or one carrying credentials
        OpenAIConfig("check", url)
    except ValueError as e:
        raise UsageError(f"{rest!r}: {e}") from None
    return name, Endpoint(url, var or None)


def member_key(
    endpoint: Endpoint | None, default_env: str, env: Mapping[str, str], who: str
) -> str | None:
    """The key a model sends (None: no key); UsageError, which never quotes the key, when
    it cannot be sent as it is or a variable named with #VAR is not set."""
    var = default_env if endpoint is None or endpoint.key_env is None else endpoint.key_env
    key = env.get(var)
    if key:
        problem = key_problem(key)
        if problem is not None:
            raise UsageError(f"the API key in ${var} {problem}; fix it (the key is not shown)")
        return key
    if endpoint is not None and endpoint.key_env is not None:
        # a variable named for this model alone: unset is a mistake, not a keyless server
        raise UsageError(f"{who}: its key variable ${var} is not set")
    return None
