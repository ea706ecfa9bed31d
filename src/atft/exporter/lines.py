"""One line of ``events.jsonl`` -> an :class:`~atft.telemetry.events.Event`, or the reason the exporter skips it.

Why a gate in front of ``Event.from_json``: the event file is the sidecar's only input, and a restarted
sidecar reads it again from its start, so a line that raised would kill it again at the same place, forever
(a crash loop that leaves every alert of the run blind). :func:`read_line` never raises on a line's content:
each line it cannot use comes back as one of :data:`SKIP_REASONS`, which the exporter counts in
``atft_exporter_skipped_lines_total{reason}``. It also bounds the work one line can cause: the follower
hands out no line over 1 MiB (``too_long``), and the nesting is measured before ``json.loads``, whose C
parser recurses once per level (a line nested 100,000 deep raises RecursionError there).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate

from atft.telemetry.events import Event

MAX_DEPTH = 64
"""Deepest nesting of JSON arrays and objects parsed; an event is one flat object (depth 1)."""

SKIP_REASONS = ("too_long", "not_utf8", "too_deep", "not_json", "invalid_event", "other_run", "label_limit")
"""Why a line was skipped: longer than 1 MiB; not UTF-8; nested deeper than MAX_DEPTH; not JSON (a blank or
torn line among them); JSON but not a valid event; an event of another run_id than the exporter's; a label value
over the exporter's bounds (see :meth:`atft.exporter.metrics.RunMetrics.admit`)."""

_ESCAPE = re.compile(rb"\\.")
_STRING = re.compile(rb'"[^"]*"')  # after the escapes are gone: linear, no backtracking
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # +1 and -1, shifted by one to fit a byte


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line the exporter cannot use: one of :data:`SKIP_REASONS`, and what was wrong, short enough to log."""

    reason: str
    detail: str


def too_deep(line: bytes) -> bool:
    """Arrays and objects nest deeper than :data:`MAX_DEPTH` outside JSON strings (as far as ``json.loads`` goes).

    Linear in the line: escapes are dropped first, so the strings are plain ``"..."`` spans. A line with no more
    opening brackets than MAX_DEPTH (every event) is answered without a scan.
    """
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:
        return False
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", line)).translate(_STEP, _NOT_BRACKET)
    return max(accumulate(brackets, lambda depth, step: depth + step - 1, initial=0)) > MAX_DEPTH


def read_line(line: bytes) -> Event | Skipped:
    """The event on ``line`` (bytes without the newline), or why it cannot be used."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Skipped("not_utf8", f"{exc.reason} at byte {exc.start} of {len(line)}")
    if too_deep(line):
        return Skipped("too_deep", f"arrays or objects nested more than {MAX_DEPTH} deep")
    try:
        return Event.from_json(text)
    except ValueError as exc:
        reason = "not_json" if isinstance(exc.__cause__, json.JSONDecodeError) else "invalid_event"
        return Skipped(reason, _short(str(exc)))
    except OverflowError as exc:  # an integer too large for a float in value or time
        return Skipped("invalid_event", _short(f"telemetry event: {exc}"))


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
