"""What a health monitor found, as one typed event: the schema every reader shares, free of torch.

A :class:`HealthEvent` is built by a monitor (:mod:`atft.health.monitors`), written once to the run's
``events.jsonl`` (:class:`atft.telemetry.events.TelemetrySink`), printed as one line
(:class:`atft.telemetry.sinks.HealthConsoleSink`) and read back by the report (:mod:`atft.report.health`),
the exporter and the fire drills, always as this type. The names below are every finding a monitor can
report; the runbooks (``docs/runbooks``) and the Prometheus alerts key on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)

NAMES = (
    "vanishing_gradient",  # critical: a component's gradient under health.grad_monitor.warn_norm, or none
    "exploding_gradient",  # critical: a component's gradient over health.grad_monitor.max_norm, or not finite
    "degeneracy_check_failed",  # warning: the collapse guard's EMA of std(pred)/std(target) under the floor
    "predictions_collapsed",  # critical: health.degeneracy.patience failed checks in a row
    "degeneracy_reset",  # warning: noise added to a collapsed head (action: reset)
    "degeneracy_recovered",  # info: a collapsed horizon passes again
    "weak_learning_signal",  # warning: the rolling window's training RankIC is not above noise
    "learning_signal_recovered",  # info: it is again
    "no_learning_signal",  # critical: an epoch's training days are not above noise
    "learning_signal_unconfirmed",  # warning: an epoch's verdict failed where too few days / h give it power
    "learning_signal_confirmed",  # info: a later epoch's verdict passes where one failed
    "dead_input",  # critical: a feature without cross-sectional variance, or one the model ignores
    "non_finite",  # critical: a NaN or Inf in the loss, a gradient or a parameter; the run stops
)

DEAD_INPUT_MIN_DAYS = 20
"""Training days a feature must stay flat (or ignored) before it is called dead; the report reads it too."""


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """One named finding: what, where (component / horizon / feature), the measured value, how bad.

    Construction validates: a name, a severity of :data:`SEVERITIES`, the right types where set.
    """

    name: str
    step: int
    value: float | None = None
    severity: Severity = "warning"
    component: str | None = None
    horizon: int | None = None
    feature: str | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.value, int | float) and not isinstance(self.value, bool):
            object.__setattr__(self, "value", float(self.value))
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name: expected a non-empty string, got {self.name!r}")
        if self.severity not in SEVERITIES:
            problems.append(f"severity: {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        for key, kind in (("step", int), ("horizon", int), ("component", str), ("feature", str), ("message", str)):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                problems.append(f"{key}: expected {kind.__name__}, got {value!r}")
        if self.value is not None and not isinstance(self.value, float):
            problems.append(f"value: expected a number, got {self.value!r}")
        if problems:
            raise ValueError(f"invalid health event {self.name!r}: " + "; ".join(problems))

    def fields(self) -> dict[str, Any]:
        """The set fields but ``step``: what a record or a line shows besides the step."""
        return {k: v for k, v in asdict(self).items() if v is not None and k != "step"}
