"""Follow ``events.jsonl`` from its first byte, line by line, the way ``tail -F`` would but without losing data.

Why not a plain ``for line in open(...)``: the sidecar starts before the training container has written anything
(the file does not exist yet), the writer flushes whole lines only at logging steps so the last line may be half
written when we read it, a resumed run appends to the same file (after cutting a torn final line left by a
killed writer), and the follower must run for days over a file of millions of lines in constant memory, whatever
the file holds. So the follower keeps only a byte offset: the end of the last *complete* line it handed out.
Each :meth:`EventFollower.poll` reads from there in fixed-size chunks, hands out the complete lines and leaves a
partial last line for the next poll (it is read again once its newline is there).

Memory is bounded by one chunk and twice ``max_line_bytes`` (the pieces of a line and the line they make; 1 MiB
each by default) whatever the file holds: a line longer than ``max_line_bytes`` is never assembled. It is handed
out as :class:`TooLong` (its length only) once its newline is there; while it grows without a newline the
follower remembers only how far it has scanned, so the next poll goes on from there instead of holding it or
reading it again. Such a line is handed out once.

A new stream is yielded as :data:`RESTART` first and read from its start (the caller rebuilds its state): a file
replaced (another inode, or deleted and written again), shrunk below the offset, or rewritten under it. The last
is caught by a fingerprint: the (up to) 64 bytes just before the offset, kept when the offset moves and compared
with the file's bytes at the same place on every poll, so a file truncated and written again up to or past the
old offset between two polls is a new stream, not read on from the middle of a line. The writer's cut of a torn
tail never changes those bytes: the offset never passes a partial line.

What it cannot see: a rewrite that leaves the 64 bytes before the offset as they were (a copy of the same first
part of the file, say). An event line ends with its wall time (keys are sorted: ``time``, ``v``, ``value``), so
two streams hold the same bytes there only when they end in the same event; the lines after the offset are then
read as if they had been appended, and a change further back goes unseen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from atft.errors import InputFileError

RESTART: Final = None
"""Yielded by :meth:`EventFollower.poll` before the first line of a replaced, truncated or rewritten file."""

CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 1 << 20
"""Longest line handed out (bytes, without its newline); an event line is well under 1 KiB."""
FINGERPRINT_BYTES = 64


@dataclass(frozen=True, slots=True)
class TooLong:
    """A line over the follower's ``max_line_bytes``, skipped unread: its length in bytes, without the newline."""

    length: int


class EventFollower:
    """Hands out each complete line of ``path`` once, in order, across polls; memory is one chunk plus one line.

    ``poll()`` yields ``bytes`` (a line without its newline), :class:`TooLong` (a line over the bound) or
    :data:`RESTART`. ``held_peak`` is the most bytes of an unfinished line it has held at once (never more
    than ``max_line_bytes``).
    """

    def __init__(self, path: str | Path, chunk_bytes: int = CHUNK_BYTES, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes
        self.offset = 0  # end of the last complete line handed out
        self.line_number = 0  # of the last line handed out, for messages (1-based)
        self.held_peak = 0
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file being followed
        self._fingerprint = b""  # the file's bytes just before offset, as last read
        self._scanned: int | None = None  # a line over the bound without its newline yet: scanned up to here
        self._scanned_print = b""  # the file's bytes just before _scanned

    @property
    def exists(self) -> bool:
        return self._identity is not None

    def poll(self) -> Iterator[bytes | TooLong | None]:
        """Yield each complete line appended since the last poll (see the class); nothing while there is no file.

        Yields :data:`RESTART` (``None``) first when the file was replaced, truncated or rewritten under the offset.
        """
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 -- closed by the with below; the open alone may fail
        except FileNotFoundError:
            return
        except OSError as exc:  # a directory, no permission: a setup mistake, not "not yet written"
            raise InputFileError(f"{self.path}: cannot read the event file: {exc.strerror}") from exc
        with fh:
            stat = os.fstat(fh.fileno())  # of the file opened, not of whatever the path names a moment later
            identity = (stat.st_dev, stat.st_ino)
            moved = self._identity is not None and identity != self._identity
            if moved or not _holds(fh, stat.st_size, self.offset, self._fingerprint):
                self.offset = self.line_number = 0
                self._fingerprint, self._scanned = b"", None
                yield RESTART
            self._identity = identity
            if self._scanned is not None and not _holds(fh, stat.st_size, self._scanned, self._scanned_print):
                self._scanned = None  # the long unfinished line was cut or rewritten: scan it again from its start
            yield from self._read(fh)

    def _read(self, fh: IO[bytes]) -> Iterator[bytes | TooLong]:
        """The lines from the offset (or from where the scan of a long unfinished line stopped) to the end."""
        pos = self.offset if self._scanned is None else self._scanned
        before = self._fingerprint if self._scanned is None else self._scanned_print  # the bytes before pos
        fh.seek(pos)
        held: list[bytes] = []  # the unfinished line's pieces, while it is within the bound
        held_bytes = 0
        while chunk := fh.read(self.chunk_bytes):
            start = 0
            while (newline := chunk.find(b"\n", start)) >= 0:
                end = pos + newline + 1
                length = end - 1 - self.offset
                if length > self.max_line_bytes:  # (always so after a scan of a long unfinished line)
                    line: bytes | TooLong = TooLong(length)
                else:
                    line = b"".join((*held, chunk[start:newline])) if held else chunk[start:newline]
                held, held_bytes, self._scanned = [], 0, None
                self.offset, self._fingerprint = end, _last_bytes(before, chunk, newline + 1)
                self.line_number += 1
                yield line
                start = newline + 1
            pos += len(chunk)
            if self._scanned is None and held_bytes + len(chunk) - start <= self.max_line_bytes:
                if start < len(chunk):
                    held.append(chunk[start:])
                    held_bytes += len(chunk) - start
                    self.held_peak = max(self.held_peak, held_bytes)
            else:  # over the bound without a newline: stop holding it, remember only how far it was scanned
                held, held_bytes = [], 0
                self._scanned, self._scanned_print = pos, _last_bytes(before, chunk, len(chunk))
            before = _last_bytes(before, chunk, len(chunk))


def _last_bytes(before: bytes, chunk: bytes, end: int) -> bytes:
    """The (up to) FINGERPRINT_BYTES bytes of the file just before ``chunk[end]``; ``before`` precedes ``chunk``."""
    if end >= FINGERPRINT_BYTES:
        return chunk[end - FINGERPRINT_BYTES : end]
    return (before + chunk[:end])[-FINGERPRINT_BYTES:]


def _holds(fh: IO[bytes], size: int, pos: int, fingerprint: bytes) -> bool:
    """The file is at least ``pos`` long and its bytes just before ``pos`` are still ``fingerprint``."""
    if size < pos:
        return False
    if not fingerprint:
        return True
    fh.seek(pos - len(fingerprint))
    return fh.read(len(fingerprint)) == fingerprint
