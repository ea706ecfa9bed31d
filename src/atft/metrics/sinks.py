"""Where metrics go. The training loop only calls ``sink.log_dict(kind, step, values)``.

``kind`` names the record ("train", "val", "epoch", ...); ``values`` is a flat dict of floats. Sinks:
JSONL (the run's ``metrics.jsonl``, append-only, flushed each call so a reader sees whole lines), the
console (a rich line per record, on stderr so stdout stays data), health events on the console, loudly
(:class:`HealthConsoleSink`), and TensorBoard (:class:`TensorBoardSink`, the optional extra ``tensorboard``).
The typed event stream ``events.jsonl`` is :class:`atft.telemetry.TelemetrySink`.
"""

from __future__ import annotations

import importlib
import json
import math
import numbers
import re
import time
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.text import Text

from atft.errors import ConfigError
from atft.telemetry import Health


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


SEVERITY_STYLES = {"critical": "bold white on red", "warning": "bold black on yellow", "info": "bold white on blue"}


class HealthConsoleSink:
    """Prints each ``health`` record as one loud line on stderr; ignores every other kind.

    ``CRITICAL vanishing_gradient component=temporal_encoder step=120 epoch=2 value=3.1e-09: <message>``,
    the severity on a background of its colour (critical red, warning yellow, info blue).
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if kind != "health":
            return
        health = Health.from_values(values)
        line = Text.assemble(
            (f" {health.severity.upper()} ", SEVERITY_STYLES[health.severity]),
            " ",
            (health.name, "bold"),
            " ",
            _health_details(health, step, values.get("epoch")),
        )
        self.console.print(line)

    def close(self) -> None:
        pass


class TensorBoardSink:
    """TensorBoard event files under ``log_dir`` (``tensorboard --logdir``), one scalar per value.

    ``add_scalar(f"{kind}/{key}", value, step)`` for each finite real value (non-finite ones are in the
    event stream and its health events, not here). A ``health`` record becomes the scalar
    ``health/<name>[/<component>][/<h>d][/<feature>]`` (its value when finite, else 1.0: the event happened)
    and the same tag's text (the console line). Flushed after every call, i.e. at each logging step.

    Raises:
        ConfigError: the ``tensorboard`` package is not installed (``pip install 'atft[tensorboard]'``).
    """

    def __init__(self, log_dir: str | Path) -> None:
        self.require(log_dir)
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(log_dir))

    @staticmethod
    def require(log_dir: str | Path) -> None:
        """Raise the ConfigError unless ``tensorboard`` imports; a job calls it before it opens its run directory."""
        try:
            importlib.import_module("tensorboard")  # torch.utils.tensorboard needs it; fail here, by name
            importlib.import_module("torch.utils.tensorboard")
        except ImportError as exc:
            raise ConfigError(
                [
                    f"the TensorBoard sink ({log_dir}) needs the package 'tensorboard', which is not installed "
                    f"({exc}); install it with: pip install 'atft[tensorboard]'"
                ],
                source="metrics sinks",
            ) from exc

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if kind == "health":
            health = Health.from_values(values)
            where = [health.component, f"{health.horizon}d" if health.horizon is not None else None, health.feature]
            tag = "/".join(["health", health.name, *(part for part in where if part is not None)])
            value = health.value if health.value is not None and math.isfinite(health.value) else 1.0
            self._writer.add_scalar(tag, value, step)
            text = f"{health.severity.upper()} {health.name} {_health_details(health, step, values.get('epoch'))}"
            self._writer.add_text(tag, text, step)
        else:
            for key, value in values.items():
                if isinstance(value, numbers.Real) and math.isfinite(value):
                    self._writer.add_scalar(f"{kind}/{key}", float(value), step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _health_details(health: Health, step: int, epoch: Any) -> str:
    """``component=... horizon=5d feature=... step=... epoch=... value=...: message`` (unset parts left out)."""
    parts = [f"component={health.component}" if health.component is not None else ""]
    parts.append(f"horizon={health.horizon}d" if health.horizon is not None else "")
    parts.append(f"feature={health.feature}" if health.feature is not None else "")
    parts.append(f"step={step}")
    parts.append(f"epoch={epoch}" if epoch is not None else "")
    parts.append(f"value={_fmt(health.value)}" if health.value is not None else "")
    details = " ".join(p for p in parts if p)
    return f"{details}: {health.message}" if health.message else details


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a metrics file, in order."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]
