"""Properties of the events follower over file histories hypothesis invents.

A history is a list of steps between polls: appends (random chunks with random newlines, so torn last lines
and lines longer than the bound), truncations followed by new writes in place (the same inode), and
replacements by another file. After every poll, the lines handed out since the last RESTART are exactly the
complete lines of the file, in order, each once (a line over the bound as TooLong of its length); a RESTART
comes exactly when the bytes already read changed; and no more than the bound is ever held for one line.

The one thing left out is the case the follower's docstring names as undetectable: a rewrite that changed the
bytes already read but left the last 64 of them as they were.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from atft.exporter.follow import FINGERPRINT_BYTES, RESTART, EventFollower, TooLong

BOUND = 16  # max_line_bytes: small, so that long lines and chunk boundaries are common
SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

pieces = st.sampled_from([b"a", b"b", b"\n", b"\n\n", b"ab" * 5, b"x" * (BOUND + 3)])
data = st.lists(pieces, max_size=12).map(b"".join)
steps = st.one_of(
    st.tuples(st.just("append"), data),
    st.tuples(st.just("rewrite"), st.floats(0, 1), data),  # truncate to a fraction of the size, write data there
    st.tuples(st.just("replace"), data),  # another inode with this content
    st.tuples(st.just("poll")),
)


def _complete_lines(content: bytes) -> list[bytes | TooLong]:
    lines = content.split(b"\n")[:-1]  # the last piece is a torn line (or empty after a final newline)
    return [line if len(line) <= BOUND else TooLong(len(line)) for line in lines]


def _window(content: bytes, end: int) -> bytes:
    return content[max(0, end - FINGERPRINT_BYTES) : end]


class Model:
    """The file as the test wrote it, and what the follower must have handed out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.content = b""
        self.read: bytes | None = None  # the content at the last poll that found a file
        self.replaced = False
        self.handed: list[bytes | TooLong] = []  # since the last RESTART
        self.kept: list[IO[bytes]] = []  # replaced files stay open: no inode number is reused within a history

    def apply(self, step: tuple) -> None:
        match step:
            case ("append", bytes() as more):
                with open(self.path, "ab") as fh:
                    fh.write(more)
                self.content += more
            case ("rewrite", float() as fraction, bytes() as more):
                keep = int(len(self.content) * fraction)
                with open(self.path, "r+b" if self.path.exists() else "w+b") as fh:
                    fh.truncate(keep)
                    fh.seek(keep)
                    fh.write(more)
                self.content = self.content[:keep] + more
            case ("replace", bytes() as content):
                if self.path.exists():
                    self.kept.append(open(self.path, "rb"))  # noqa: SIM115 -- closed at the end of the history
                fresh = self.path.with_name("fresh")
                fresh.write_bytes(content)
                os.replace(fresh, self.path)
                self.content = content
                self.replaced = self.read is not None

    def expect_restart(self) -> bool:
        """Whether the poll must start with RESTART; discards the undetectable rewrites (the module docstring)."""
        if self.read is None:
            return False
        if self.replaced:
            return True
        offset = self.read.rfind(b"\n") + 1  # the end of the last complete line read
        new, old = self.content, self.read
        if len(new) < offset or _window(new, offset) != _window(old, offset):
            return True
        assume(new[:offset] == old[:offset])
        scanned = len(old)  # a line over the bound without its newline is remembered as scanned this far
        if len(old) - offset > BOUND and len(new) >= scanned and _window(new, scanned) == _window(old, scanned):
            assume(new[offset:scanned] == old[offset:scanned])
        return False

    def check(self, follower: EventFollower) -> None:
        restart = self.expect_restart()
        out = list(follower.poll())
        if restart:
            assert out[:1] == [RESTART], out
            self.handed, out = [], out[1:]
        assert RESTART not in out, out
        self.handed += out
        assert self.handed == _complete_lines(self.content)
        assert follower.held_peak <= BOUND
        self.read = self.content if self.path.exists() else None
        self.replaced = False


@SETTINGS
@given(history=st.lists(steps, max_size=25), chunk=st.integers(1, 40))
def test_every_complete_line_is_handed_out_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, history: list[tuple], chunk: int
) -> None:
    path = tmp_path_factory.mktemp("follow") / "events.jsonl"
    model = Model(path)
    follower = EventFollower(path, chunk_bytes=chunk, max_line_bytes=BOUND)
    try:
        for step in [*history, ("poll",)]:
            if step[0] == "poll":
                model.check(follower)
            else:
                model.apply(step)
    finally:
        for fh in model.kept:
            fh.close()
