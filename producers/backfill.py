"""``giftsync publish FILE|-``: backfill change events from a JSON-lines file.

Each line is one change event. Lines are read, decoded and validated one at a time and the
valid events flow straight into :func:`producers.publish.enqueue_valid`, which holds one
chunk (one queue message) at a time: a file of any length streams through in constant
memory. A bad line (not JSON, or breaking the contract) is reported on stderr as
``line N: path: reason``, once per problem, and the run goes on. Blank lines are skipped.

Exit status: 0 when every line was enqueued, 1 when any line was invalid (the valid ones are
still enqueued), 2 on a configuration error or an unreadable file, 3 when Redis failed part
way (what was enqueued stays enqueued; re-running is safe, as giftsync drops a change that is
not newer than the one it already applied).
"""

from __future__ import annotations

import codecs
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import redis

from giftsync.settings import get_settings
from mapping.events import EventValidationError, FieldError
from producers.progress import Progress, printable
from producers.publish import CHUNK_SIZE, decode_json, enqueue_valid, validate

__all__ = ["MAX_LINE_BYTES", "Summary", "backfill", "run"]

# A line longer than this is reported as invalid without being decoded: no event comes near
# it, and it bounds what one line can make the process hold.
MAX_LINE_BYTES = 5 * 1024 * 1024

Report = Callable[[int, list[FieldError]], None]


@dataclass
class Summary:
    """What one backfill did."""

    read: int = 0
    enqueued: int = 0
    invalid: int = 0
    seconds: float = 0.0
    # The number of the last line taken from the file (blank ones included).
    last_line: int = 0

    @property
    def rate(self) -> float:
        """Lines read (validated and enqueued) per second."""
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"read {self.read}, enqueued {self.enqueued}, invalid {self.invalid}, "
            f"{self.seconds:.2f} s, {self.rate:,.0f} events/s"
        )


def _lines(source: BinaryIO) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, line or None when too long, bytes consumed so far), one line at a time."""
    number = 0
    consumed = 0
    while True:
        line = source.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        consumed += len(line)
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of the monster line
                line = source.readline(MAX_LINE_BYTES)
                consumed += len(line)
            yield number, None, consumed
            continue
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)  # some editors start files with one
        yield number, line, consumed


def backfill(
    source: BinaryIO,
    summary: Summary,
    *,
    report: Report,
    progress: Progress | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Summary:
    """Validate and enqueue every line of ``source``, counting into ``summary``.

    ``report(line_number, errors)`` is called for each invalid line. ``summary`` is filled in
    as the run goes, so a caller still has the counts if Redis fails part way.
    """
    started = time.monotonic()

    def valid_events() -> Iterator[Mapping[str, Any]]:
        for number, line, consumed in _lines(source):
            summary.last_line = number
            if progress is not None:
                progress.update(consumed, summary.read)
            if line is not None:
                line = line.strip()
                if not line:
                    continue
            summary.read += 1
            try:
                if line is None:
                    reason = f"line longer than {MAX_LINE_BYTES} bytes"
                    raise EventValidationError([FieldError("$", reason)])
                event = decode_json(line)
                validate(event)
            except EventValidationError as exc:
                summary.invalid += 1
                report(number, exc.errors)
                continue
            yield event  # type: ignore[misc]  # validate() proved it is an object

    try:
        summary.enqueued = enqueue_valid(valid_events(), chunk_size=chunk_size)
    finally:
        summary.seconds = time.monotonic() - started
    return summary


def _open(path: str) -> tuple[BinaryIO, int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    handle = open(path, "rb")  # noqa: SIM115 - closed by run()
    info = os.fstat(handle.fileno())
    return handle, info.st_size if stat.S_ISREG(info.st_mode) else None


def run(path: str, *, stderr: TextIO | None = None) -> int:
    """The ``giftsync publish`` command: backfill ``path`` (``-`` for stdin); the exit status."""
    err = stderr or sys.stderr
    get_settings()  # a configuration error stops the run before anything is read
    try:
        source, total = _open(path)
    except OSError as exc:
        print(f"giftsync publish: cannot read {printable(path)}: {exc.strerror}", file=err)
        return 2
    progress = Progress(err, total)

    def report(number: int, errors: list[FieldError]) -> None:
        for error in errors:
            progress.note(f"line {number}: {error.path}: {error.reason}")

    summary = Summary()
    try:
        with source:
            backfill(source, summary, report=report, progress=progress)
    except redis.RedisError as exc:
        progress.close()
        print(
            f"giftsync publish: stopped at line {summary.last_line}, "
            f"Redis failed: {printable(str(exc))}. "
            "Events of earlier lines may be enqueued; re-running the file is safe.",
            file=err,
        )
        return 3
    progress.close()
    print(f"giftsync publish: {summary}", file=err)
    return 1 if summary.invalid else 0
