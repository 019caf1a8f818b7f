"""Errors raised by the pure layer: a change event, a record or a setting that is wrong.

::

    ValueError
     ├── EventValidationError   a change event breaks the contract; carries every FieldError
     │                          at once
     ├── InvalidEvents          some events of a ``publish_many`` call broke the contract; the
     │                          valid ones went on; ``errors`` by event index
     ├── MappingError           a valid record cannot be mapped yet, e.g. a fund with no
     │                          Virtuous Project id; one path and one reason
     └── SettingsError          the tenants file or the environment holds something giftsync
                                cannot run with; every problem at once

Each names the offending field by its dotted path inside the event (``record.fund.virtuous_id``),
so a person can fix the source record and a worker can decide what to push first. The whole
project's tree, the workers' errors included, is drawn in :mod:`workers.errors`.
"""

from __future__ import annotations

from typing import NamedTuple


class FieldError(NamedTuple):
    """One problem with an event: the dotted path of the field and why it is wrong."""

    path: str
    reason: str


class EventValidationError(ValueError):
    """An event breaks the contract; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.reason}" for e in errors))


class MappingError(ValueError):
    """A record that passed validation still cannot become a Virtuous payload."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class SettingsError(ValueError):
    """The tenants file (or the process environment) holds something giftsync cannot run with."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class InvalidEvents(ValueError):
    """Some events of a ``publish_many`` call broke the contract; the valid ones were enqueued.

    ``errors`` maps each invalid event's index to every problem found with it.
    """

    def __init__(self, errors: dict[int, list[FieldError]], accepted: int) -> None:
        self.errors = errors
        self.accepted = accepted
        lines = [
            f"event {index}: " + "; ".join(f"{e.path}: {e.reason}" for e in problems)
            for index, problems in sorted(errors.items())
        ]
        super().__init__(
            f"{len(errors)} invalid event(s), {accepted} accepted\n" + "\n".join(lines[:20])
        )
