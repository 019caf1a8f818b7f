"""Loading the Lua scripts that make every multi-key Redis change atomic.

Scripts live as ``.lua`` files beside the module that runs them. Those that change a
record's state start with ``state_prelude.lua``, so the per-tenant state counts are kept in
step by the same code everywhere.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script


@cache
def _source(name: str) -> str:
    return resources.files("workers.store").joinpath(name).read_text(encoding="utf-8")


def load_script(client: redis.Redis, name: str, *, prelude: bool = True) -> Script:
    """Register ``workers/<name>`` (with the state prelude unless told not to) on ``client``."""
    text = _source(name)
    if prelude:
        text = _source("state_prelude.lua") + "\n" + text
    return client.register_script(text)


def decode(value: Any) -> Any:
    """Turn the bytes Redis returns from a script into str, recursively."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value
