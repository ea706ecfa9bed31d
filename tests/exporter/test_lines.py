"""A line of the event file -> an event or the reason it is skipped; never an exception, whatever the bytes."""

from __future__ import annotations

import json

import pytest
from exporter.hostile import HOSTILE, RUN_ID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atft.exporter.lines import MAX_DEPTH, SKIP_REASONS, Skipped, read_line, too_deep
from atft.telemetry.events import Event

SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
EVENT = Event(run_id=RUN_ID, kind="metric", name="train/loss", step=3, epoch=0, value=0.5, time=1.7e9)


DECIDED_LATER = {  # read as events; refused by the exporter's checks after reading (or by the follower)
    "longer than 1 MiB",
    "a step beyond 64 bits",
    "an event of another run",
    "a component name of 10,000 characters",
}


@pytest.mark.parametrize(("case", "line", "reason"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_each_unusable_line_has_its_reason(case: str, line: bytes, reason: str) -> None:
    result = read_line(line.rstrip(b"\n"))
    if case in DECIDED_LATER:
        assert reason == "too_long" or isinstance(result, Event)
        return
    assert isinstance(result, Skipped) and result.reason == reason, result
    assert len(result.detail) < 400  # the log line names the problem, it does not repeat the line


def test_an_event_is_read() -> None:
    assert read_line(EVENT.to_json().encode()) == EVENT


@pytest.mark.parametrize("depth", [1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 5000])
def test_nesting_is_measured_outside_strings(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    assert too_deep(nested.encode()) == (depth > MAX_DEPTH)
    in_a_string = json.dumps({"message": nested, "quoted": '"' + nested + '\\"'}).encode()
    assert not too_deep(in_a_string)  # brackets inside strings (escaped quotes too) are text


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(line: bytes) -> None:
    result = read_line(line.replace(b"\n", b""))
    assert isinstance(result, Event) or result.reason in SKIP_REASONS


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(field=st.sampled_from([*json.loads(EVENT.to_json())]), value=json_values, depth=st.integers(0, 200))
def test_an_event_with_any_value_in_any_field_is_read_or_skipped(field: str, value: object, depth: int) -> None:
    """Every field of a valid event set to any JSON value, nested up to 200 deep: an event or a reason."""
    for _ in range(depth):
        value = [value]
    result = read_line(json.dumps(json.loads(EVENT.to_json()) | {field: value}).encode())
    assert isinstance(result, Event) or result.reason in SKIP_REASONS
    if depth > MAX_DEPTH:
        assert isinstance(result, Skipped) and result.reason == "too_deep"
