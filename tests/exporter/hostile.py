"""Lines of an events.jsonl the exporter cannot use, each with the reason it must be skipped for.

Shared by the line tests, the in-process exporter tests and the exporter-restart test. Each case is one whole
line, newline included; none of them may stop the exporter or change a metric other than the skip counter.
"""

from __future__ import annotations

from pathlib import Path

from atft.exporter.lines import SKIP_REASONS
from atft.health.events import HealthEvent
from atft.telemetry.events import Event, EventWriter, TelemetrySink

RUN_ID = "r1"


def _event(**fields: object) -> bytes:
    base: dict[str, object] = {"run_id": RUN_ID, "kind": "metric", "name": "train/loss", "step": 1, "epoch": 0}
    return Event(**(base | fields), time=1.7e9).to_json().encode() + b"\n"  # type: ignore[arg-type]


HOSTILE: list[tuple[str, bytes, str]] = [
    ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000 + b"\n", "too_deep"),
    ("objects nested 100,000 deep, never closed", b'{"a":' * 100_000 + b"\n", "too_deep"),
    ("binary garbage", bytes(b for b in range(256) if b != 10) * 4 + b"\n", "not_utf8"),
    ("torn line, continued by the next write", b'{"component":null,"epo{"component":null,"epoch":0}\n', "not_json"),
    ("killed writer's half line, then a newline", b'{"component":null,"epo\n', "not_json"),
    ("blank line", b"\n", "not_json"),
    ("NUL bytes", b"\x00" * 64 + b"\n", "not_json"),
    ("UTF-8 byte order mark before an event", b"\xef\xbb\xbf" + _event(), "not_json"),
    ("longer than 1 MiB", b'{"v":1,"message":"' + b"x" * (2 << 20) + b'"}\n', "too_long"),
    ("JSON, not an event", b'{"v":1}\n', "invalid_event"),
    ("a JSON array", b"[1, 2, 3]\n", "invalid_event"),
    ("bare NaN", _event(value=1.0).replace(b'"value":1.0', b'"value":NaN'), "invalid_event"),
    (
        "a time too large for a float",
        _event().replace(b'"time":1700000000.0', b'"time":1' + b"0" * 400),
        "invalid_event",
    ),
    ("a step beyond 64 bits", _event().replace(b'"step":1', b'"step":1' + b"0" * 30), "invalid_event"),
    ("an event of another run", _event(run_id="someone-else"), "other_run"),
    ("a component name of 10,000 characters", _event(name="grad/grad_norm", component="c" * 10_000), "label_limit"),
]


def write_run(path: Path) -> None:
    """A short run through the real writer: pre-flight, training, a health finding, a validation, the end."""
    with EventWriter(path, run_id=RUN_ID) as writer:
        sink = TelemetrySink(writer)
        sink.log_dict("preflight", 0, {"grad_norm/temporal_encoder": 0.2, "grad_norm/graph_block": 0.3})
        for step in (25, 50):
            sink.log_dict("train", step, {"epoch": 0, "loss": 1.0 / step, "lr": 1e-3})
            sink.health(HealthEvent("degeneracy_check_failed", step, 0.01, horizon=5))
        sink.log_dict("val", 50, {"epoch": 0, "loss": 0.9, "rank_ic_5d": 0.03})


def spoil(benign: Path, out: Path) -> dict[str, float]:
    """``benign``'s lines with every HOSTILE line spread between them, written to ``out``; returns the number of
    lines to be skipped for each reason."""
    good = benign.read_bytes().splitlines(keepends=True)
    n, m = len(HOSTILE), len(good)
    groups = [[line, *(c[1] for c in HOSTILE[i * n // m : (i + 1) * n // m])] for i, line in enumerate(good)]
    out.write_bytes(b"".join(line for group in groups for line in group))
    expected = dict.fromkeys(SKIP_REASONS, 0.0)
    for _, _, reason in HOSTILE:
        expected[reason] += 1
    return expected
