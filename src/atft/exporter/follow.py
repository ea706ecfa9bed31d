"""Follow ``events.jsonl`` from its first byte, line by line, the way ``tail -F`` would but without losing data.

Why not a plain ``for line in open(...)``: the sidecar starts before the training container has written
anything (the file does not exist yet), the writer flushes whole lines only at logging steps so the last
line may be half written when we read it, a resumed run appends to the same file (after cutting a torn
final line left by a killed writer), and the follower must run for days over a file of millions of lines
in constant memory. So the follower keeps only a byte offset: the end of the last *complete* line it
handed out. Each :meth:`EventFollower.poll` reads from there in fixed-size chunks, hands out the complete
lines and leaves a partial last line for the next poll (it is read again once its newline is there).

A file that is replaced (another inode) or shrinks below that offset is a new stream: :meth:`poll` yields
:data:`RESTART` first and reads it from the start, and the caller rebuilds its state. The writer's cut
of a torn tail never shrinks the file below the offset, because the offset never passes a partial line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from atft.errors import InputFileError

RESTART: Final = None
"""Yielded by :meth:`EventFollower.poll` before the first line of a replaced or truncated file."""

CHUNK_BYTES = 1 << 20


class EventFollower:
    """Hands out each complete line of ``path`` once, in order, across polls; memory is one chunk."""

    def __init__(self, path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.offset = 0  # end of the last complete line handed out
        self.line_number = 0  # of the last line handed out, for messages (1-based)
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file being followed

    @property
    def exists(self) -> bool:
        return self._identity is not None

    def poll(self) -> Iterator[bytes | None]:
        """Yield each complete line appended since the last poll (without its newline); nothing if no file.

        Yields :data:`RESTART` (``None``) first when the file was replaced or truncated under the offset.
        """
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return
        identity = (stat.st_dev, stat.st_ino)
        if self._identity is not None and (identity != self._identity or stat.st_size < self.offset):
            self.offset = self.line_number = 0
            yield RESTART
        self._identity = identity
        if stat.st_size == self.offset:
            return
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 -- closed by the with below; the open alone may fail
        except OSError as exc:  # a directory, no permission: a setup mistake, not "not yet written"
            raise InputFileError(f"{self.path}: cannot read the event file: {exc.strerror}") from exc
        with fh:
            fh.seek(self.offset)
            pending = b""
            while chunk := fh.read(self.chunk_bytes):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()  # b"" when the chunk ended on a newline; else a partial line
                for line in lines:
                    self.offset += len(line) + 1
                    self.line_number += 1
                    yield line
