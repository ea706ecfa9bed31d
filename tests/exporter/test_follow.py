"""The follower hands out every complete line exactly once: before the file exists, torn lines, resumed runs,
rewritten files, lines over the bound (in bounded memory)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from atft.errors import InputFileError
from atft.exporter.follow import MAX_LINE_BYTES, RESTART, EventFollower, TooLong
from atft.telemetry.events import Event, EventWriter


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


def test_a_rewrite_up_to_the_old_offset_between_two_polls_is_a_new_stream(tmp_path: Path) -> None:
    """Truncated and written again to the old size or beyond (same inode) before the next poll: not read on from
    the old offset (that would hand out the tail of a line and lose the line it belongs to)."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"first run line 1\nfirst run line 2\n")
    follower = EventFollower(path)
    assert _lines(follower) == [b"first run line 1", b"first run line 2"]
    with open(path, "r+b") as fh:  # truncate, then regrow in place: same inode, size >= the old offset
        fh.truncate(0)
        fh.write(b"second run, a longer first line\nsecond run line 2\n")
    assert _lines(follower) == [RESTART, b"second run, a longer first line", b"second run line 2"]
    assert follower.line_number == 2


def test_a_writer_cutting_its_torn_tail_is_not_a_new_stream(tmp_path: Path) -> None:
    """The bytes before the offset never change when a resumed writer cuts a torn tail and appends."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"a\nb\nhalf a li")
    follower = EventFollower(path)
    assert _lines(follower) == [b"a", b"b"]
    with open(path, "r+b") as fh:
        fh.truncate(4)
        fh.seek(4)
        fh.write(b"c\n")
    assert _lines(follower) == [b"c"]


def test_a_line_over_the_bound_is_skipped_once_without_being_held(tmp_path: Path) -> None:
    """A 24 MiB line written over several polls without its newline: the follower never holds more than the
    bound (1 MiB) plus a chunk, hands it out once as TooLong when its newline comes, and reads on."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"before\n")
    follower = EventFollower(path)
    assert _lines(follower) == [b"before"]
    mib = b"x" * (1 << 20)  # made before tracing starts, so what is traced is the follower's
    tracemalloc.start()
    try:
        for _ in range(3):
            with open(path, "ab") as fh:
                fh.writelines([mib] * 8)
            assert _lines(follower) == []  # no newline yet: nothing handed out
        with open(path, "ab") as fh:
            fh.write(b"\nafter\n")
        seen = _lines(follower)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == [TooLong(24 << 20), b"after"]
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB traced while following a 24 MiB line"
    assert follower.held_peak <= MAX_LINE_BYTES and follower.line_number == 3


def test_a_line_exactly_at_the_bound_is_handed_out_and_one_byte_more_is_not(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"a" * 100 + b"\n" + b"b" * 101 + b"\nc\n")
    assert _lines(EventFollower(path, chunk_bytes=7, max_line_bytes=100)) == [b"a" * 100, TooLong(101), b"c"]


def test_a_long_unfinished_line_cut_by_the_resumed_writer_is_not_counted(tmp_path: Path) -> None:
    """A killed writer's long half line, cut by the resumed writer before it appends: never handed out."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"a\n" + b"x" * 300)
    follower = EventFollower(path, chunk_bytes=64, max_line_bytes=100)
    assert _lines(follower) == [b"a"]
    with open(path, "r+b") as fh:
        fh.truncate(2)
        fh.seek(2)
        fh.write(b"b\n" + b"y" * 250 + b"\nc\n")
    assert _lines(follower) == [b"b", TooLong(250), b"c"]
