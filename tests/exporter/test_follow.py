"""The follower hands out every complete line exactly once: before the file exists, torn lines, resumed runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atft.errors import InputFileError
from atft.exporter.follow import RESTART, EventFollower
from atft.telemetry import Event, EventWriter


def _lines(follower: EventFollower) -> list[bytes | None]:
    return list(follower.poll())


def test_missing_file_yields_nothing_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.jsonl"
    follower = EventFollower(path)
    assert _lines(follower) == [] and not follower.exists
    path.parent.mkdir()
    path.write_bytes(b'{"a":1}\n')
    assert _lines(follower) == [b'{"a":1}'] and follower.exists


def test_torn_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"one\ntw")
    follower = EventFollower(path)
    assert _lines(follower) == [b"one"]
    assert _lines(follower) == []  # still torn: not handed out, not lost
    with open(path, "ab") as fh:
        fh.write(b"o\nthree\n")
    assert _lines(follower) == [b"two", b"three"]
    assert follower.line_number == 3


def test_lines_longer_than_a_chunk_are_reassembled(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [bytes([65 + i]) * (7 + 5 * i) for i in range(10)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert _lines(EventFollower(path, chunk_bytes=8)) == lines


def test_resumed_writer_cuts_a_torn_tail_and_appends(tmp_path: Path) -> None:
    """A killed writer leaves half a line; the resumed writer cuts it and appends: nothing is read twice."""
    path = tmp_path / "events.jsonl"
    with EventWriter(path, run_id="r") as writer:
        writer.emit("metric", "train/loss", step=1, epoch=0, value=0.5)
    follower = EventFollower(path)
    first = [Event.from_json(line.decode()).name for line in follower.poll() if line]
    assert first == ["run_start", "train/loss", "run_end"]
    with open(path, "ab") as fh:
        fh.write(b'{"component":null,"epo')  # a killed writer's half line
    assert _lines(follower) == []
    with EventWriter(path, run_id="r", step=1) as writer:
        writer.emit("metric", "train/loss", step=2, epoch=0, value=0.4)
    events = [Event.from_json(line.decode()) for line in follower.poll() if line]
    assert [(e.name, e.step) for e in events] == [("run_start", 1), ("train/loss", 2), ("run_end", 2)]
    assert "cut a torn final line" in events[0].message


def test_replaced_or_truncated_file_restarts_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"a\nb\n")
    follower = EventFollower(path)
    assert _lines(follower) == [b"a", b"b"]
    path.write_bytes(b"c\n")  # truncated below the offset (same inode)
    assert _lines(follower) == [RESTART, b"c"]
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(b"d\ne\nf\n")
    os.replace(replacement, path)  # another inode, even though it is longer
    assert _lines(follower) == [RESTART, b"d", b"e", b"f"]
    assert follower.line_number == 3


def test_an_unreadable_event_path_is_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.mkdir()  # a directory where the file should be: os.stat works, reading does not
    with pytest.raises(InputFileError, match=r"events.jsonl: cannot read the event file: Is a directory"):
        _lines(EventFollower(path))
