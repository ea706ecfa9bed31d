"""The run's telemetry events as Prometheus metrics: every family defined once, in :data:`FAMILIES`.

Why a fixed table instead of one gauge per event name: Prometheus names carry meaning (``atft_`` prefix,
base units, ``_total`` for counters), the dashboard and the alert rules depend on them, and the number of
series must stay bounded however long the run is. Every series is keyed by a component, a horizon, a
feature or a state, never by a step or a time, so :class:`RunMetrics` holds a few hundred samples whether
it has read a thousand events or a hundred million (``benchmarks/bench_exporter_memory.py`` measures it).

The run id, namespace, replica and job are not labels here: they are the Pushgateway grouping key, which
the Pushgateway adds to every series of the group. ``docs/monitoring.md`` lists the metrics for users.

State gauges (0/1) turn a stream of findings into "is it so now", which is what an alert needs:
``atft_gradient_vanishing`` (the component's latest gradient check: each ``grad/grad_norm`` event clears
it, the ``vanishing_gradient`` finding of the same check sets it), ``atft_predictions_collapsed`` (set by
``predictions_collapsed``, cleared by ``degeneracy_recovered``), ``atft_learning_signal_missing`` (set by the
epoch-end verdict ``no_learning_signal``, cleared by ``learning_signal_confirmed``), ``atft_learning_signal_weak``
(set by the rolling window's warning ``weak_learning_signal``, cleared by ``learning_signal_recovered``) and
``atft_run_state`` (``running`` after
``run_start``; after ``run_end``: ``succeeded`` for ``status=ok``, ``preempted`` for ``status=preempted: ...``
(SIGTERM ended the run after a checkpoint: it resumes, appending a new ``run_start`` to the same file, and
the state is ``running`` again with every counter going on), ``failed`` for anything else).

Counters are zero from the moment their label value is first seen (a component in the pre-flight record,
a horizon in any record), so ``increase()`` sees the first finding, not only the second.

The label values come from the file, so they are bounded here, whatever it holds (:meth:`RunMetrics.admit`):
at most :data:`MAX_LABEL_CHARS` characters each and :data:`MAX_LABEL_KEYS` distinct components, horizons
and health findings (a run has a few dozen), so a file of a million made-up component names cannot grow the
state or the push beyond a few thousand series.
"""

from __future__ import annotations

from atft.exporter.lines import SKIP_REASONS, Skipped
from atft.exporter.samples import Family, Samples
from atft.telemetry.events import Event

RUN_STATES = ("running", "succeeded", "preempted", "failed")
MAX_LABEL_CHARS = 128
MAX_LABEL_KEYS = 512
_MAX_INT = 2**63  # step, epoch and horizon become float64 values and labels; beyond int64 is not a real run


def _g(name: str, text: str, *labels: str) -> Family:
    return Family(name, "gauge", text, labels)


def _c(name: str, text: str, *labels: str) -> Family:
    return Family(name, "counter", text, labels)


FAMILIES = {
    f.name: f
    for f in (
        _g("atft_train_loss", "training loss (weighted sum of the terms) at the last logging step"),
        _g("atft_learning_rate", "optimizer learning rate at the last logging step"),
        _g("atft_train_gradient_l2_norm", "L2 norm of the whole model's gradient before clipping"),
        _g("atft_gradient_l2_norm", "gradient L2 norm of a model component at its last check", "component"),
        _g("atft_activation_gradient_l2_norm", "gradient L2 norm reaching a named activation", "activation"),
        _g("atft_prediction_dispersion_ratio", "EMA of per-day std(pred)/std(target) (collapse guard)", "horizon"),
        _g("atft_train_rank_ic", "rolling per-day training RankIC", "horizon"),
        _g("atft_train_rank_ic_tstat", "t-statistic of the rolling per-day training RankIC", "horizon"),
        _g("atft_epoch_train_rank_ic", "mean per-day training RankIC over the last judged epoch", "horizon"),
        _g("atft_epoch_train_rank_ic_tstat", "t-statistic of the last judged epoch's training RankIC", "horizon"),
        _g("atft_validation_loss", "validation loss at the last epoch end"),
        _g("atft_validation_ic", "validation IC (Pearson, mean over days) at the last epoch end", "horizon"),
        _g("atft_validation_rank_ic", "validation RankIC (Spearman, mean over days) at the last epoch end", "horizon"),
        _g("atft_validation_sharpe_ratio", "validation long-short Sharpe ratio (gross), last epoch", "horizon"),
        _g("atft_validation_dispersion_ratio", "validation std(prediction)/std(target), mean over days", "horizon"),
        _g("atft_epoch_duration_seconds", "wall time of the last epoch"),
        _g("atft_throughput_stock_days_per_second", "training throughput of the last epoch"),
        _g("atft_peak_rss_bytes", "peak resident memory of the training process"),
        _g("atft_gradient_vanishing", "1 when the component's latest gradient check found it vanishing", "component"),
        _g("atft_predictions_collapsed", "1 while the horizon's predictions are collapsed", "horizon"),
        _g("atft_learning_signal_missing", "1 while the last epoch's training RankIC was not above noise", "horizon"),
        _g("atft_learning_signal_weak", "1 while the rolling training RankIC is not above noise", "horizon"),
        _g("atft_run_state", "1 for the run's current state: running, succeeded, preempted or failed", "state"),
        _g("atft_step", "optimizer step of the last event"),
        _g("atft_epoch", "epoch (0-based) of the last event"),
        _g("atft_last_event_timestamp_seconds", "wall time the last event was written"),
        _g("atft_step_advanced_timestamp_seconds", "wall time the step last went up or the run last (re)started"),
        _c("atft_vanishing_gradient_events_total", "vanishing-gradient findings", "component"),
        _c("atft_degeneracy_checks_failed_total", "failed collapse-guard checks", "horizon"),
        _c("atft_degeneracy_resets_total", "prediction-head resets by the collapse guard", "horizon"),
        _c("atft_non_finite_events_total", "non-finite values found (each stops the run)"),
        _c("atft_health_events_total", "health findings by name and where", "event", "component", "horizon", "feature"),
        _c("atft_run_starts_total", "run_start events: 1 for a fresh run, one more per resume"),
        _c("atft_exporter_events_total", "events read from the stream, by kind", "kind"),
        _c("atft_exporter_skipped_lines_total", "lines of the event file skipped, by why", "reason"),
    )
}

# metric event name (docs/telemetry.md: "<record kind>/<metric>") -> gauge family
GAUGES = {
    "train/loss": "atft_train_loss",
    "train/lr": "atft_learning_rate",
    "train/grad_norm": "atft_train_gradient_l2_norm",
    "preflight/grad_norm": "atft_gradient_l2_norm",
    "grad/grad_norm": "atft_gradient_l2_norm",
    "grad/act_grad": "atft_activation_gradient_l2_norm",
    "signal/dispersion_ema": "atft_prediction_dispersion_ratio",
    "signal/train_rank_ic": "atft_train_rank_ic",
    "signal/train_rank_ic_t": "atft_train_rank_ic_tstat",
    "epoch/epoch_train_rank_ic": "atft_epoch_train_rank_ic",
    "epoch/epoch_train_rank_ic_t": "atft_epoch_train_rank_ic_tstat",
    "val/loss": "atft_validation_loss",
    "val/ic": "atft_validation_ic",
    "val/rank_ic": "atft_validation_rank_ic",
    "val/sharpe": "atft_validation_sharpe_ratio",
    "val/dispersion_ratio": "atft_validation_dispersion_ratio",
    "epoch/wall_s": "atft_epoch_duration_seconds",
    "epoch/stock_days_per_s": "atft_throughput_stock_days_per_second",
    "cost/peak_rss_bytes": "atft_peak_rss_bytes",
}

# health finding -> its own counter (every finding also counts in atft_health_events_total)
HEALTH_COUNTERS = {
    "vanishing_gradient": "atft_vanishing_gradient_events_total",
    "degeneracy_check_failed": "atft_degeneracy_checks_failed_total",
    "degeneracy_reset": "atft_degeneracy_resets_total",
    "non_finite": "atft_non_finite_events_total",
}

# health finding -> (state gauge, the value it sets)
STATE_CHANGES = {
    "vanishing_gradient": ("atft_gradient_vanishing", 1.0),
    "predictions_collapsed": ("atft_predictions_collapsed", 1.0),
    "degeneracy_recovered": ("atft_predictions_collapsed", 0.0),
    "no_learning_signal": ("atft_learning_signal_missing", 1.0),
    "learning_signal_confirmed": ("atft_learning_signal_missing", 0.0),
    "weak_learning_signal": ("atft_learning_signal_weak", 1.0),
    "learning_signal_recovered": ("atft_learning_signal_weak", 0.0),
}

_PER_HORIZON = (
    "atft_degeneracy_checks_failed_total",
    "atft_degeneracy_resets_total",
    "atft_predictions_collapsed",
    "atft_learning_signal_missing",
    "atft_learning_signal_weak",
)
_PER_COMPONENT = ("atft_vanishing_gradient_events_total", "atft_gradient_vanishing")
_COMPONENT_SOURCES = ("preflight/grad_norm", "grad/grad_norm")


class RunMetrics(Samples):
    """The Prometheus state of one event stream: :meth:`observe` each event in stream order."""

    def __init__(self) -> None:
        super().__init__(FAMILIES)
        self._last_step = -1
        self._label_keys: set[tuple[object, ...]] = set()
        self.touch("atft_non_finite_events_total")
        for reason in SKIP_REASONS:
            self.touch("atft_exporter_skipped_lines_total", reason)

    def admit(self, event: Event) -> Skipped | None:
        """None when :meth:`observe` may take ``event``; else why not (the label bounds of the module docstring).

        An admitted event's label values count against the bounds from then on.
        """
        for name in ("step", "epoch", "horizon"):
            number = getattr(event, name)
            if number is not None and not -_MAX_INT < number < _MAX_INT:
                return Skipped("invalid_event", f"telemetry event {event.name[:80]!r}: {name} is beyond 64-bit")
        texts = {"component": event.component, "feature": event.feature}
        if event.kind == "health":
            texts["name"] = event.name
        for name, text in texts.items():
            if text is not None and len(text) > MAX_LABEL_CHARS:
                why = f"{name} of {len(text)} characters (at most {MAX_LABEL_CHARS} become a label)"
                return Skipped("label_limit", f"telemetry event {event.name[:80]!r}: {why}")
        keys: set[tuple[object, ...]] = set()
        if event.component is not None:
            keys.add(("component", event.component))
        if event.horizon is not None:
            keys.add(("horizon", event.horizon))
        if event.kind == "health":
            keys.add(("health", event.name, event.component, event.horizon, event.feature))
        new = keys - self._label_keys
        if new and len(self._label_keys) + len(new) > MAX_LABEL_KEYS:
            why = f"{MAX_LABEL_KEYS} distinct components, horizons and health findings already seen"
            return Skipped("label_limit", f"telemetry event {event.name[:80]!r}: {why}; this one is new")
        self._label_keys |= new
        return None

    def observe(self, event: Event) -> None:
        """Update the metrics with one event (any kind)."""
        self.inc("atft_exporter_events_total", event.kind)
        self.set("atft_last_event_timestamp_seconds", event.time)
        self.set("atft_step", float(event.step))
        self.set("atft_epoch", float(event.epoch))
        if event.step > self._last_step:
            self.set("atft_step_advanced_timestamp_seconds", event.time)
        self._last_step = event.step
        if event.horizon is not None:
            for name in _PER_HORIZON:
                self.touch(name, str(event.horizon))
        if event.kind == "metric":
            self._metric(event)
        elif event.kind == "health":
            self._health(event)
        elif event.name == "run_start":
            self.inc("atft_run_starts_total")
            self.set("atft_step_advanced_timestamp_seconds", event.time)  # a (re)started run is not stalled yet
            self._state("running")
        elif event.name == "run_end":
            self._state(end_state(event.message))

    @property
    def finished(self) -> bool:
        """The stream's last lifecycle event is a ``run_end`` of any status (a later ``run_start`` makes it
        unfinished: a preempted run that resumes is followed on)."""
        return self.get("atft_run_state", "running") == 0.0

    def _metric(self, event: Event) -> None:
        if event.name in _COMPONENT_SOURCES and event.component is not None:
            for name in _PER_COMPONENT:
                self.touch(name, event.component)
            if event.name == "grad/grad_norm":  # a new check: the finding of this check (if any) follows
                self.set("atft_gradient_vanishing", 0.0, event.component)
        family = GAUGES.get(event.name)
        if family is None or event.value is None:
            return
        labels = self.families[family].labels
        if not labels:
            self.set(family, event.value)
        elif (where := event.horizon if labels[0] == "horizon" else event.component) is not None:
            self.set(family, event.value, str(where))

    def _health(self, event: Event) -> None:
        where = {"component": event.component, "horizon": event.horizon, "feature": event.feature}
        self.inc("atft_health_events_total", event.name, *(_text(v) for v in where.values()))
        if (counter := HEALTH_COUNTERS.get(event.name)) is not None:
            self.inc(counter, *(_text(where[label]) for label in self.families[counter].labels))
        if (change := STATE_CHANGES.get(event.name)) is not None:
            gauge, value = change
            label = self.families[gauge].labels[0]
            self.set(gauge, value, _text(where[label]))

    def _state(self, state: str) -> None:
        for name in RUN_STATES:
            self.set("atft_run_state", 1.0 if name == state else 0.0, name)


def end_state(message: str) -> str:
    """The run state a ``run_end`` message gives (``atft.telemetry.events.EventWriter.close`` writes them)."""
    if message == "status=ok":
        return "succeeded"
    if message == "status=preempted" or message.startswith("status=preempted:"):
        return "preempted"
    return "failed"


def _text(value: object) -> str:
    """A label value: empty (which Prometheus treats as absent) when the field does not apply."""
    return "" if value is None else str(value)
