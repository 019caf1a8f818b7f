"""Errors raised by the mapping layer.

::

    ValueError
     ├── EventValidationError   (mapping.events)  a change event breaks the contract;
     │                                            carries every FieldError at once
     └── MappingError           (here)            a valid record cannot be mapped yet, e.g.
                                                  a fund with no Virtuous Project id; one
                                                  path and one reason

Both name the offending field by its dotted path inside the event (``record.fund.virtuous_id``),
so a person can fix the source record and a worker can decide what to push first.
"""

from __future__ import annotations


class MappingError(ValueError):
    """A record that passed validation still cannot become a Virtuous payload."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")
