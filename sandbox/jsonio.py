"""JSON in and out: Decimal amounts are written as JSON numbers, compactly."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def json_default(value: Any) -> Any:
    """``json.dumps`` hook: Decimal amounts become numbers (12.34, never "12.34")."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":"), default=json_default).encode()
