"""Where a run's records go. The training loop calls ``sink.log_dict(kind, step, values)`` for metrics and
``sink.health(event)`` for each finding of a monitor (a typed :class:`~atft.health.events.HealthEvent`).

``kind`` names the record ("train", "val", "epoch", ...); ``values`` is a flat dict of numbers (and a few
strings). The one stream every reader follows is ``events.jsonl`` (:class:`atft.telemetry.events.TelemetrySink`:
the report, the exporter, resume). Beside it: the console (a line per record, on stderr so stdout stays
data), health events on the console, loudly (:class:`HealthConsoleSink`), and TensorBoard
(:class:`TensorBoardSink`, the optional extra ``tensorboard``).

The console sinks write for whoever reads stderr. On a terminal: rich styling. Anywhere else (``kubectl
logs``, ``atft logs -f``, a CI log, a file) a record is one plain line that starts with its kind (a health
event with its severity): never wrapped at 80 columns, never an escape code, a line break inside a message
written as a space -- so ``grep`` and a log shipper see whole records. A terminal is a stream whose
``isatty()`` says so; ``FORCE_COLOR`` in a pod's environment does not make its log one.
"""

from __future__ import annotations

import importlib
import math
import numbers
import re
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.text import Text

from atft.errors import ConfigError
from atft.health.events import HealthEvent


class MetricSink(Protocol):
    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None: ...

    def health(self, event: HealthEvent) -> None: ...

    def close(self) -> None: ...


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or unusual stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def one_line(text: str) -> str:
    """``text`` with every line break and other control character as a space: one record, one log line."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def write_line(text: str, stream: TextIO | None = None) -> None:
    """``text`` as one plain line on ``stream`` (stderr, looked up at the call), flushed so a log sees it now."""
    out = stream or sys.stderr
    out.write(one_line(text) + "\n")
    out.flush()


def _terminal_console(console: Console | None, plain: bool | None) -> Console | None:
    """The rich console to print on, or None for plain lines (``plain`` None: plain unless stderr is a terminal)."""
    if console is not None:
        return console
    if plain if plain is not None else not is_terminal(sys.stderr):
        return None
    return Console(stderr=True, soft_wrap=True)


class ConsoleSink:
    """One compact line per record of the kinds it shows, with the keys that match ``keys`` (a regex).

    ``val step=828 epoch=0 loss=0.6679 rank_ic_1d=0.03119 ...``: the kind in bold on a terminal; a plain line
    anywhere else (module docstring). ``console`` prints on that rich console, ``plain`` forces either way.
    """

    def __init__(
        self, kinds: tuple[str, ...], keys: str = ".*", console: Console | None = None, plain: bool | None = None
    ) -> None:
        self.kinds = kinds
        self.keys = re.compile(keys)
        self.console = _terminal_console(console, plain)

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if kind not in self.kinds:
            return
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in values.items() if self.keys.fullmatch(k))
        if self.console is None:
            write_line(f"{kind} step={step} {shown}")
        else:  # Text, not markup: a value with brackets (a path) is printed as it is
            self.console.print(Text.assemble((kind, "bold"), one_line(f" step={step} {shown}")), highlight=False)

    def health(self, event: HealthEvent) -> None:
        pass  # HealthConsoleSink prints findings

    def close(self) -> None:
        pass


class Sinks:
    """Fan one call out to several sinks."""

    def __init__(self, *sinks: MetricSink) -> None:
        self.sinks = sinks

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log_dict(kind, step, values)

    def health(self, event: HealthEvent) -> None:
        for sink in self.sinks:
            sink.health(event)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


SEVERITY_STYLES = {"critical": "bold white on red", "warning": "bold black on yellow", "info": "bold white on blue"}


class HealthConsoleSink:
    """Prints each health event as one loud line on stderr; ignores metric records.

    ``CRITICAL vanishing_gradient component=temporal_encoder step=120 epoch=2 value=3.1e-09: <message>``,
    on a terminal the severity on a background of its colour (critical red, warning yellow, info blue);
    elsewhere that plain line, whatever line breaks the message has. ``console`` and ``plain`` as in
    :class:`ConsoleSink`.
    """

    def __init__(self, console: Console | None = None, plain: bool | None = None) -> None:
        self.console = _terminal_console(console, plain)
        self.epoch: int | None = None

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if "epoch" in values:
            self.epoch = int(values["epoch"])

    def health(self, event: HealthEvent) -> None:
        self.announce(event.severity, event.name, _health_details(event, self.epoch))

    def announce(self, severity: str, name: str, details: str) -> None:
        """One health-style line: also for a warning that is no health event (bf16 emulated on this CPU)."""
        if self.console is None:
            write_line(f"{severity.upper()} {name} {details}")
            return
        line = Text.assemble(
            (f" {severity.upper()} ", SEVERITY_STYLES[severity]), " ", (name, "bold"), " ", one_line(details)
        )
        self.console.print(line)

    def close(self) -> None:
        pass


class TensorBoardSink:
    """TensorBoard event files under ``log_dir`` (``tensorboard --logdir``), one scalar per value.

    ``add_scalar(f"{kind}/{key}", value, step)`` for each finite real value (non-finite ones are in the
    event stream and its health events, not here). A health event becomes the scalar
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
        for key, value in values.items():
            if isinstance(value, numbers.Real) and math.isfinite(value):
                self._writer.add_scalar(f"{kind}/{key}", float(value), step)
        self._writer.flush()

    def health(self, event: HealthEvent) -> None:
        where = [event.component, f"{event.horizon}d" if event.horizon is not None else None, event.feature]
        tag = "/".join(["health", event.name, *(part for part in where if part is not None)])
        value = event.value if event.value is not None and math.isfinite(event.value) else 1.0
        self._writer.add_scalar(tag, value, event.step)
        self._writer.add_text(tag, f"{event.severity.upper()} {event.name} {_health_details(event)}", event.step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _health_details(health: HealthEvent, epoch: int | None = None) -> str:
    """``component=... horizon=5d feature=... step=... epoch=... value=...: message`` (unset parts left out)."""
    parts = [f"component={health.component}" if health.component is not None else ""]
    parts.append(f"horizon={health.horizon}d" if health.horizon is not None else "")
    parts.append(f"feature={health.feature}" if health.feature is not None else "")
    parts.append(f"step={health.step}")
    parts.append(f"epoch={epoch}" if epoch is not None else "")
    parts.append(f"value={_fmt(health.value)}" if health.value is not None else "")
    details = " ".join(p for p in parts if p)
    return f"{details}: {health.message}" if health.message else details


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)
