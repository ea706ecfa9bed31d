"""The run's one record: a typed, versioned stream of events, ``events.jsonl`` in the run directory.

Everything a run logs goes here once and is read from here: the report (:func:`read_stream` and
:func:`records` give back the loop's records), the Prometheus exporter sidecar (which tails it), and resume
(a checkpoint stores the stream's length; see :class:`EventWriter`). Nothing is written twice elsewhere.

Every line is one :class:`Event` as strict JSON (keys sorted; NaN and infinities as the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"``), so any JSON parser reads it. Three kinds: ``metric`` (one value of a
``log_dict`` record), ``health`` (a named finding of a health
monitor) and ``lifecycle`` (``run_start``, ``epoch_end``, ``run_end``). The schema, the naming convention
and the versioning rule are in ``docs/telemetry.md``; a change to them is a change to that page.

Only rank 0 writes. :class:`TelemetrySink` turns the loop's ``log_dict`` calls into events and flushes after
each call (the loop calls ``log_dict`` only at logging steps and epoch ends), and fsyncs at each epoch end.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from time import time as wall_clock
from types import TracebackType
from typing import IO, Any, Literal, get_args

from atft.errors import InputFileError, Preempted
from atft.health.events import SEVERITIES, HealthEvent, Severity

SCHEMA_VERSION = 1

Kind = Literal["metric", "health", "lifecycle"]
KINDS: tuple[str, ...] = get_args(Kind)

# Keys "<metric>/<component>" whose suffix names a model component (atft.health / watch records).
COMPONENT_METRICS = ("grad_norm", "grad_max", "grad_none", "grad_small", "act_grad")

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_COMPONENT_KEY = re.compile(rf"(?P<name>{'|'.join(COMPONENT_METRICS)})/(?P<component>.+)")
_HORIZON_KEY = re.compile(r"(?P<name>.+)_(?P<horizon>\d+)d")


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """One line of ``events.jsonl``. Fields are documented in ``docs/telemetry.md``; construction validates."""

    v: int = SCHEMA_VERSION
    run_id: str
    kind: Kind
    name: str
    step: int
    epoch: int
    rank: int = 0
    component: str | None = None
    horizon: int | None = None
    feature: str | None = None
    value: float | None = None
    severity: Severity = "info"
    message: str = ""
    time: float = field(default_factory=wall_clock)

    def __post_init__(self) -> None:
        for name in ("value", "time"):  # ints are accepted and stored as floats
            number = getattr(self, name)
            if _is_number(number):
                object.__setattr__(self, name, float(number))
        problems = _field_problems(self)
        if self.v != SCHEMA_VERSION or isinstance(self.v, bool):
            problems.insert(0, f"v: schema version {self.v!r} is unknown; this reader reads v={SCHEMA_VERSION}")
        if self.kind not in KINDS:
            problems.append(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if not isinstance(self.time, float) or not math.isfinite(self.time):
            problems.append(f"time: expected finite seconds since the epoch, got {self.time!r}")
        if problems:
            raise ValueError(f"invalid telemetry event {self.name!r}: " + "; ".join(problems))

    def to_json(self) -> str:
        """One line of strict JSON, keys sorted; a non-finite ``value`` is written as a string."""
        record = asdict(self)
        record["value"] = _encode(self.value)
        return json.dumps(record, sort_keys=True, allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Event:
        """Parse and validate one line. Unknown fields are ignored (a later additive v1 may add some).

        Raises:
            ValueError: not strict JSON, no or an unknown schema version ``v``, a missing field (all of them
                are named), or a field of the wrong type or value.
        """
        try:
            data = json.loads(line, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise ValueError(f"telemetry event is not JSON: {exc}") from exc
        except RecursionError:
            raise ValueError("telemetry event is nested too deeply to be one") from None
        if not isinstance(data, dict):
            raise ValueError(f"telemetry event is not a JSON object: {line.strip()[:80]!r}")
        if "v" not in data:
            raise ValueError("telemetry event has no schema version: missing field v")
        if data["v"] != SCHEMA_VERSION or isinstance(data["v"], bool):
            raise ValueError(f"telemetry event: unknown schema version v={data['v']!r}; this reader reads v=1")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"telemetry event: missing field(s) {', '.join(missing)}")
        value = data["value"]
        if isinstance(value, str):
            if value not in _NON_FINITE:
                raise ValueError(f"telemetry event: value {value!r} is a string other than NaN/Infinity/-Infinity")
            value = _NON_FINITE[value]
        return cls(**{f.name: data[f.name] for f in fields(cls)} | {"value": value})


def split_key(key: str) -> tuple[str, str | None, int | None]:
    """Split a key of the loop's metric dicts into ``(name, component, horizon)``.

    ``<m>/<component>`` for ``m`` in :data:`COMPONENT_METRICS` (``grad_norm/temporal_encoder``) ->
    ``(m, component, None)``; ``<metric>_<h>d`` (``rank_ic_5d``, ``dispersion_ratio_20d``) ->
    ``(metric, None, h)``; any other key -> ``(key, None, None)``.
    """
    if match := _COMPONENT_KEY.fullmatch(key):
        return match["name"], match["component"], None
    if match := _HORIZON_KEY.fullmatch(key):
        return match["name"], None, int(match["horizon"])
    return key, None, None


class EventWriter:
    """Appends events to ``path`` as JSON lines; on any rank but 0 it builds and validates but writes nothing.

    Opening writes ``lifecycle/run_start`` (an existing file is appended to: a resumed run continues its
    stream, never rewrites it). A run resumed from a checkpoint passes ``resumed_from``: the stream's length
    in bytes when that checkpoint was written, which becomes the ``run_start`` event's ``value``. The metric
    and health events after that byte and before this ``run_start`` belong to steps the run replays: they
    stay in the file (the exporter saw them happen) and :func:`read_stream` leaves them out, so a report of
    a resumed run reads each step once. :meth:`close` writes ``lifecycle/run_end`` with ``status=<status>``
    as the message. Used as a context manager, the status is ``ok``; ``preempted: <message>`` when the block
    raised :class:`~atft.errors.Preempted` (SIGTERM: a checkpoint was written and the run resumes, so it is
    not a failure); ``failed: <exception>`` for anything else. A final line torn by a killed writer is cut off
    on open, and the ``run_start`` message says how many bytes went.
    """

    def __init__(
        self,
        path: str | Path,
        run_id: str,
        rank: int = 0,
        *,
        step: int = 0,
        epoch: int = 0,
        resumed_from: int | None = None,
    ) -> None:
        self.path, self.run_id, self.rank = Path(path), run_id, rank
        self.step, self.epoch = step, epoch
        self._fh: IO[str] | None = None
        self._closed = False
        if rank != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = _cut_torn_tail(self.path)
        existing = self.path.stat().st_size if self.path.exists() else 0
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- held for the run, closed by close()
        if resumed_from is not None:
            message = f"resumed from step {step}: events after byte {resumed_from} are replayed steps"
        else:
            message = "appending to an existing stream" if existing else "new stream"
        if torn:
            message += f"; cut a torn final line of {torn} bytes left by a killed writer"
        severity: Severity = "warning" if torn else "info"
        self.emit(
            "lifecycle", "run_start", step=step, epoch=epoch, message=message, severity=severity, value=resumed_from
        )
        self.fsync()

    def emit(
        self,
        kind: Kind,
        name: str,
        *,
        step: int,
        epoch: int,
        component: str | None = None,
        horizon: int | None = None,
        feature: str | None = None,
        value: float | None = None,
        severity: Severity = "info",
        message: str = "",
    ) -> Event:
        """Build, validate and (rank 0) write one event; returns it. Written, not flushed: see :meth:`flush`."""
        if self._closed:
            raise ValueError(f"{self.path}: telemetry writer is closed; cannot write {kind}/{name}")
        event = Event(
            run_id=self.run_id,
            kind=kind,
            name=name,
            step=step,
            epoch=epoch,
            rank=self.rank,
            component=component,
            horizon=horizon,
            feature=feature,
            value=value,
            severity=severity,
            message=message,
        )
        self.step, self.epoch = step, epoch
        if self._fh is not None:
            self._fh.write(event.to_json() + "\n")
        return event

    def flush(self) -> None:
        """Hand the written lines to the OS, so a reader of the file sees them (each logging step)."""
        if self._fh is not None:
            self._fh.flush()

    def fsync(self) -> None:
        """Flush and ``os.fsync``: the lines survive a node crash (each epoch end; one disk write)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self, status: str = "ok") -> None:
        """Write ``run_end`` (``info`` for ok, ``warning`` for preempted, else ``critical``), fsync and close.

        A second call does nothing.
        """
        if self._closed:
            return
        severity: Severity = "info" if status == "ok" else "warning" if status.startswith("preempted") else "critical"
        self.emit(
            "lifecycle", "run_end", step=self.step, epoch=self.epoch, severity=severity, message=f"status={status}"
        )
        self.fsync()
        self._closed = True
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close("ok")
        elif isinstance(exc, Preempted):
            self.close(f"preempted: {exc}")
        else:
            self.close(f"failed: {type(exc).__name__}: {exc}")


class TelemetrySink:
    """The sink protocol over an :class:`EventWriter`.

    ``log_dict(kind, step, values)``: each value becomes one ``metric`` event named ``f"{kind}/{name}"`` with
    the component and horizon from :func:`split_key`: a number (or bool) as its ``value``, a string (``device``,
    a checkpoint path) as its ``message`` with a null value; None is skipped; any other type is a TypeError.
    ``epoch`` is taken from ``values["epoch"]`` (and remembered for records without one), never emitted as a
    metric. ``health(event)`` writes one ``health`` event. ``kind == "epoch"`` also writes
    ``lifecycle/epoch_end`` and fsyncs; every other call flushes, so a reader (the exporter, a report of a
    stopped run, a checkpoint measuring the stream) sees whole lines. The writer belongs to its opener:
    :meth:`close` fsyncs, it does not close the writer (so the opener can record how the run ended).
    """

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer
        self.epoch = writer.epoch

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if "epoch" in values:
            self.epoch = int(values["epoch"])
        for key, value in values.items():
            if key == "epoch" or value is None:
                continue
            if not isinstance(value, str) and not _is_number(value) and not isinstance(value, bool):
                raise TypeError(f"{kind} record at step {step}: {key} is a {type(value).__name__}, not a number")
            name, component, horizon = split_key(key)
            number, text = (None, value) if isinstance(value, str) else (float(value), "")
            self.writer.emit(
                "metric",
                f"{kind}/{name}",
                step=step,
                epoch=self.epoch,
                component=component,
                horizon=horizon,
                value=number,
                message=text,
            )
        if kind == "epoch":
            self.writer.emit("lifecycle", "epoch_end", step=step, epoch=self.epoch)
            self.writer.fsync()
        else:
            self.writer.flush()

    def health(self, event: HealthEvent) -> None:
        self.writer.emit("health", epoch=self.epoch, **asdict(event))
        self.writer.flush()

    def close(self) -> None:
        self.writer.fsync()


def read_events(path: str | Path) -> list[Event]:
    """Every event of a telemetry file, in order, replayed ones included (what the exporter sees); a bad line,
    an unterminated last one too, is an :class:`InputFileError` naming ``path:line``."""
    events = []
    for number, _, line in _lines(path):
        if not line.endswith(b"\n"):
            raise InputFileError(f"{path}:{number}: the last line has no newline (a writer was killed writing it)")
        events.append(_parse(path, number, line))
    return events


def read_stream(path: str | Path) -> tuple[list[Event], int | None]:
    """The run's history as it stands: every whole event but the replayed ones, and the number of an
    unterminated last line left out (or None).

    Replayed: a metric or health event after the byte a resumed ``run_start`` names as its checkpoint's
    (:class:`EventWriter`) and before that ``run_start``; lifecycle events always stay (the stops and starts
    happened). The file is appended to while the run goes on, so a kill can leave half a line at its end:
    that one line is left out and its number returned (the report says so); a bad line anywhere else is an
    :class:`InputFileError` naming ``path:line``.
    """
    kept: list[tuple[int, Event]] = []
    for number, offset, line in _lines(path):
        if not line.endswith(b"\n"):
            return [e for _, e in kept], number
        event = _parse(path, number, line)
        if event.kind == "lifecycle" and event.name == "run_start" and event.value is not None:
            checkpoint = event.value
            kept = [(o, e) for o, e in kept if o < checkpoint or e.kind == "lifecycle"]
        kept.append((offset, event))
    return [e for _, e in kept], None


def _lines(path: str | Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line with its newline) of each non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    offset = 0
    with open(path, "rb") as fh:  # bytes: a line that is not UTF-8 is named like any other bad line
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, offset, line
            offset += len(line)


def _parse(path: str | Path, number: int, line: bytes) -> Event:
    try:
        return Event.from_json(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputFileError(f"{path}:{number}: not UTF-8 text") from None
    except ValueError as exc:
        raise InputFileError(f"{path}:{number}: {exc}") from exc


def records(events: list[Event]) -> list[dict[str, Any]]:
    """The ``log_dict`` records the events were made of, in order: the inverse of :class:`TelemetrySink`.

    A record is ``{"kind", "step", "epoch", "time", **values}``: consecutive ``metric`` events of one record
    kind and step make one record (their keys rejoined: ``grad_norm/<component>``, ``<name>_<h>d``; a string
    value from the message), until a key repeats; a ``health`` event is one record of kind ``health`` with its
    set fields. Lifecycle events end a record and are not records.
    """
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for event in events:
        if event.kind != "metric":
            current = None
            if event.kind == "health":
                found = HealthEvent(
                    event.name,
                    event.step,
                    event.value,
                    event.severity,
                    event.component,
                    event.horizon,
                    event.feature,
                    event.message,
                )
                out.append(
                    {"kind": "health", "step": event.step, "epoch": event.epoch, "time": event.time, **found.fields()}
                )
            continue
        kind, _, name = event.name.partition("/")
        key = _join_key(name, event.component, event.horizon)
        if current is None or (current["kind"], current["step"]) != (kind, event.step) or key in current:
            current = {"kind": kind, "step": event.step, "epoch": event.epoch, "time": event.time}
            out.append(current)
        current[key] = event.message if event.value is None else event.value
    return out


def _join_key(name: str, component: str | None, horizon: int | None) -> str:
    """The inverse of :func:`split_key`."""
    if component is not None:
        return f"{name}/{component}"
    return f"{name}_{horizon}d" if horizon is not None else name


def _is_number(value: object) -> bool:
    """A real number that is not a bool (ints, floats, numpy scalars)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _field_problems(obj: Event) -> list[str]:
    """Type and value problems of the shared fields, each naming its field."""
    problems = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name in ("v", "time"):
            continue
        optional = f.name in ("component", "horizon", "feature", "value")
        if value is None and optional:
            continue
        if f.name in ("step", "epoch", "rank", "horizon"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            expected = "an int"
        elif f.name == "value":
            ok, expected = isinstance(value, float), "a number"
        else:
            ok, expected = isinstance(value, str), "a string"
        if not ok:
            problems.append(f"{f.name}: expected {expected}{' or null' if optional else ''}, got {value!r}")
    if obj.severity not in SEVERITIES:
        problems.append(f"severity: {obj.severity!r} is not one of {', '.join(SEVERITIES)}")
    if not obj.name:
        problems.append("name: empty")
    return problems


def _encode(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _reject_constant(token: str) -> float:
    raise ValueError(f"telemetry event: bare {token} is not strict JSON (write it as the string {token!r})")


def _cut_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last newline; returns the bytes cut (0 when it ends with a whole line)."""
    if not path.exists():
        return 0
    with open(path, "rb+") as fh:
        end = pos = fh.seek(0, os.SEEK_END)
        keep = 0
        while pos > 0:
            start = max(0, pos - 65536)
            fh.seek(start)
            newline = fh.read(pos - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            pos = start
        if keep < end:
            fh.truncate(keep)
            os.fsync(fh.fileno())
        return end - keep
