"""Where metrics go. The training loop only calls ``sink.log_dict(kind, step, values)``.

``kind`` names the record ("train", "val", "epoch", ...); ``values`` is a flat dict of floats. Sinks:
JSONL (the run's ``metrics.jsonl``, append-only, flushed each call so a reader sees whole lines) and the
console (a rich line per record, on stderr so stdout stays data).
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console


class MetricSink(Protocol):
    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends ``{"kind", "step", "time", **values}`` per call to a JSON-lines file."""

    def __init__(self, path: str | Path) -> None:
        self._fh = open(path, "a")  # noqa: SIM115 -- held open for the run, closed by close()

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        record = {"kind": kind, "step": step, "time": time.time(), **values}
        self._fh.write(json.dumps(record, default=float, allow_nan=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class ConsoleSink:
    """One compact line per record of the kinds it shows, with the keys that match ``keys`` (a regex)."""

    def __init__(self, kinds: tuple[str, ...], keys: str = ".*", console: Console | None = None) -> None:
        self.kinds = kinds
        self.keys = re.compile(keys)
        self.console = console or Console(stderr=True)

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if kind not in self.kinds:
            return
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in values.items() if self.keys.fullmatch(k))
        self.console.print(f"[bold]{kind}[/bold] step={step} {shown}", highlight=False)

    def close(self) -> None:
        pass


class Sinks:
    """Fan one call out to several sinks."""

    def __init__(self, *sinks: MetricSink) -> None:
        self.sinks = sinks

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log_dict(kind, step, values)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a metrics file, in order."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]
