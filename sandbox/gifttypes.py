"""Gift types: read as Virtuous's samples send them (``EFT``, ``NonCash``) and as it returns them
(``Electronic Funds Transfer``, ``Non-Cash``), case, spaces, hyphens and underscores aside; stored
and answered as it returns them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TYPE_NOISE = re.compile(r"[\s_-]+")
# Gift type spellings clients send -> the name Virtuous returns (virtuous-ts gift-constants.ts;
# taylorbrooks gift_designation_query_options.json "Gift Type" valueOptions; the n8n node's
# giftType examples; HMAC-Auth GiftTransaction.cs).
GIFT_TYPE_ALIASES = {
    "eft": "Electronic Funds Transfer",
    "noncash": "Non-Cash",
    "crypto": "Cryptocoin",
    "ira": "Qualified Charitable Distribution",
    "qcd": "Qualified Charitable Distribution",
    "reversingtransaction": "Reversing Transaction",
    "paypal": "Paypal",
}


def gift_type_key(name: str) -> str:
    """A gift type's spelling with case, spaces, hyphens and underscores ignored."""
    return _TYPE_NOISE.sub("", name).lower()


def gift_type_catalog(names: Iterable[str]) -> dict[str, str]:
    """Lookup of an organisation's gift types: every accepted spelling -> the returned name."""
    returned = [GIFT_TYPE_ALIASES.get(gift_type_key(n), n) for n in names]
    table = {gift_type_key(n): n for n in returned}
    for alias, name in GIFT_TYPE_ALIASES.items():
        if name in returned:
            table.setdefault(alias, name)
    return table
