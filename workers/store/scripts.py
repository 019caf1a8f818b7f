"""Loading the Lua scripts that make every multi-key Redis change atomic.

Scripts live as ``.lua`` files beside the module that runs them. Those that change a
record's state start with ``state_prelude.lua``, so the per-tenant state counts are kept in
step by the same code everywhere.
"""

from __future__ import annotations

import threading
import weakref
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script


@cache
def _source(name: str) -> str:
    return resources.files("workers.store").joinpath(name).read_text(encoding="utf-8")


_registered: weakref.WeakKeyDictionary[redis.Redis, dict[tuple[str, str | None], Script]] = (
    weakref.WeakKeyDictionary()
)
_registered_lock = threading.Lock()


def load_script(
    client: redis.Redis, name: str, *, prelude: str | None = "state_prelude.lua"
) -> Script:
    """The script ``workers/store/<name>`` after the ``prelude`` script it shares (by default
    the state prelude; None for none), registered once per client."""
    with _registered_lock:
        scripts = _registered.setdefault(client, {})
        script = scripts.get((name, prelude))
        if script is None:
            text = _source(name)
            if prelude is not None:
                text = _source(prelude) + "\n" + text
            script = scripts[(name, prelude)] = client.register_script(text)
        return script


def decode(value: Any) -> Any:
    """Turn the bytes Redis returns from a script into str, recursively."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value
