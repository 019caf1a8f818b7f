"""A one-line progress bar for the backfill CLI, drawn only on a terminal.

It redraws at most ``REDRAW_SECONDS`` apart, so a fast loop pays for a clock read per update
and nothing more. Lines written through :meth:`Progress.note` clear the bar first and it
comes back on the next redraw, so error reports and the bar never share a line. On anything
that is not a terminal (a pipe, a file, CI logs) it writes nothing but the notes.

Notes quote the input file (field names, values in reasons), which is not the operator's:
:func:`printable` escapes every control and formatting character in them, so a key holding a
newline cannot forge a report line and one holding an escape sequence never reaches the
terminal as one.
"""

from __future__ import annotations

import time
import unicodedata
from typing import TextIO

__all__ = ["Progress", "printable"]

# Redraw at most this often: fast enough to look live, rare enough to cost nothing.
REDRAW_SECONDS = 0.1
BAR_WIDTH = 30
# Carriage return plus "erase to end of line".
_CLEAR = "\r\x1b[K"


# Control characters, format characters (bidirectional overrides, zero-width ones), line and
# paragraph separators, and unassigned code points: shown escaped, never as themselves.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on written as a Python escape."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in _UNPRINTABLE
        else ch
        for ch in text
    )


class Progress:
    """Progress over ``total`` bytes (None when unknown, as for stdin), counting lines too."""

    def __init__(self, stream: TextIO, total: int | None = None) -> None:
        self.stream = stream
        self.total = total
        self.enabled = stream.isatty()
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._visible = False

    def update(self, done: int, lines: int) -> None:
        """Note that ``done`` bytes and ``lines`` lines are processed; redraw if it is time."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn_at < REDRAW_SECONDS:
            return
        self._drawn_at = now
        self._draw(done, lines, now)

    def note(self, text: str) -> None:
        """Write one line of text above the bar (or plainly, when there is no bar).

        ``text`` is made :func:`printable` first: it is always exactly one line.
        """
        if self._visible:
            self.stream.write(_CLEAR)
            self._visible = False
        self.stream.write(printable(text) + "\n")

    def close(self) -> None:
        """Remove the bar, leaving the terminal as it was."""
        if self._visible:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._visible = False

    def _draw(self, done: int, lines: int, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = f"{lines / elapsed:,.0f} lines/s"
        if self.total:
            share = min(done / self.total, 1.0)
            filled = int(share * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            text = f"[{bar}] {share:4.0%}  {lines:,} lines  {rate}"
        else:
            text = f"{lines:,} lines  {rate}"
        self.stream.write(_CLEAR + text)
        self.stream.flush()
        self._visible = True
