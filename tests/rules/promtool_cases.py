"""promtool unit tests for the alert rules, generated from the rules file under test.

Why generated: the same scenarios must hold for the shipped ``files/alerts.yaml`` and for the PrometheusRule
the chart renders with other ``for:`` windows and thresholds, so the evaluation times are computed from the
rules being tested. For every alert: a series where the condition starts at minute ``T0``; promtool checks
that nothing fires one evaluation before ``T0 + for`` (pending) and that exactly the expected alert, with
its labels and expanded annotations, fires at ``T0 + for``; plus healthy series that must never fire, checked
at those two evaluations too (a preempted run under ATFTRunFailed, a preempted run resumed within the window).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

STEP_S = 60  # promtool evaluation interval
GROUP = {"namespace": "ml", "run_id": "r1", "replica_type": "master", "replica_index": "0"}

Series = list[tuple[dict[str, str], list[float]]]  # (labels incl. __name__, one value per minute)


@dataclass
class Scenario:
    """Series for one test group; ``firing`` labels (besides severity) when the alert must fire."""

    series: Series
    onset_min: int  # first minute the condition holds (ignored for healthy scenarios)
    firing: dict[str, str] = field(default_factory=dict)
    value_at: Callable[[int], float] = lambda minute: 1.0  # the alert's value at a minute (for $value)


def duration_s(text: str) -> int:
    """A Prometheus duration (``1h30m``, ``5m``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return int(sum(int(n) * units[u] for n, u in parts))


def humanize_duration(seconds: float) -> str:
    """Prometheus' ``humanizeDuration`` template function (for whole seconds of at least 1)."""
    s = int(seconds)
    days, hours, minutes, secs = s // 86400, s // 3600 % 24, s // 60 % 60, s % 60
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{seconds:.4g}s"


def _labels(name: str, job: str, **extra: str) -> dict[str, str]:
    return {"__name__": name, "job": job, **GROUP, **extra}


def _flat(value: float, n: int) -> list[float]:
    return [value] * n


def _step(before: float, after: float, onset: int, n: int) -> list[float]:
    return [before if minute < onset else after for minute in range(n)]


def _running(job: str, n: int, value: float = 1.0) -> tuple[dict[str, str], list[float]]:
    return _labels("atft_run_state", job, state="running"), _flat(value, n)


def _threshold(expr: str, pattern: str, alert: str) -> float:
    match = re.search(pattern, expr)
    if match is None:
        raise ValueError(f"{alert}: expr has no {pattern!r}: {expr}")
    return float(match[1])


def scenarios(alert: str, expr: str, for_s: int, n: int, job: str) -> tuple[Scenario, list[Series]]:
    """The firing scenario and the healthy ones of ``alert`` (``for:`` of ``for_s``) over ``n`` minutes, for rules
    of job ``job``."""
    onset = 2
    states = {
        "ATFTVanishingGradient": ("atft_gradient_vanishing", "component", "temporal_encoder"),
        "ATFTPredictionsCollapsed": ("atft_predictions_collapsed", "horizon", "5"),
        "ATFTNoLearningSignal": ("atft_learning_signal_missing", "horizon", "20"),
        "ATFTWeakLearningSignal": ("atft_learning_signal_weak", "horizon", "20"),
    }
    if alert in states:
        name, key, where = states[alert]
        other = "graph_block" if key == "component" else "1"
        bad = [
            (_labels(name, job, **{key: where}), _step(0, 1, onset, n)),
            (_labels(name, job, **{key: other}), _flat(0, n)),
        ]
        fire = Scenario([*bad, _running(job, n)], onset, {**GROUP, "job": job, key: where})
        healthy = [
            [(_labels(name, job, **{key: where}), _flat(0, n)), _running(job, n)],  # never bad
            [*bad, _running(job, n, 0.0)],  # bad, but the run has finished: its report tells
            [
                (_labels(name, job, **{key: where}), _step(0, 1, onset, n)[: onset + 1] + _flat(0, n - onset - 1)),
                _running(job, n),
            ],
        ]
        return fire, healthy
    if alert == "ATFTDegeneracyResets":
        threshold = _threshold(expr, r"\)\s*>\s*([0-9.e+]+)", alert)
        bump = math.floor(threshold) + 1
        name = "atft_degeneracy_resets_total"
        fire = Scenario(
            [(_labels(name, job, horizon="5"), _step(0, bump, onset, n))], onset, {**GROUP, "job": job, "horizon": "5"}
        )
        healthy = [
            [(_labels(name, job, horizon="5"), _flat(bump + 5, n))],  # many resets long ago: no increase now
            [
                (_labels(name, job, horizon="5"), _step(0, math.floor(threshold), onset, n))
            ],  # at the threshold, not above
        ]
        return fire, healthy
    if alert in ("ATFTNonFinite", "ATFTRunFailed", "ATFTRunPreempted"):
        state = {"ATFTRunFailed": "failed", "ATFTRunPreempted": "preempted"}.get(alert)
        labels = (
            _labels("atft_non_finite_events_total", job)
            if state is None
            else _labels("atft_run_state", job, state=state)
        )
        fire_labels = {**GROUP, "job": job, **({"state": state} if state else {})}
        fire = Scenario([(labels, _step(0, 1, onset, n))], onset, fire_labels)
        healthy = [[(labels, _flat(0, n))]]
        if state is not None:  # ended, then resumed within one evaluation: no page
            healthy.append([(labels, [1.0 if m == onset else 0.0 for m in range(n)])])
        if alert == "ATFTRunPreempted":  # resumed in the last minute of the window: no page
            window = [1.0 if onset <= m < onset + for_s // STEP_S else 0.0 for m in range(n)]
            healthy.append([(labels, window), _running(job, n, 0.0)])
        if alert == "ATFTRunFailed":  # preempted (SIGTERM after a checkpoint) is not failed
            preempted = _labels("atft_run_state", job, state="preempted")
            healthy.append([(labels, _flat(0, n)), (preempted, _step(0, 1, onset, n))])
        return fire, healthy
    if alert in ("ATFTTrainingStalled", "ATFTExporterNotPushing"):
        name = "atft_step_advanced_timestamp_seconds" if alert == "ATFTTrainingStalled" else "push_time_seconds"
        after_s = _threshold(expr, r"\btime\(\) - [a-z_]+(?:\{[^}]*\})?\s*>\s*([0-9.e+]+)", alert)
        stop = 2  # progress (or pushes) every minute until minute `stop`, then nothing
        stuck = [float(min(m, stop) * STEP_S) for m in range(n)]
        moving = [float(m * STEP_S) for m in range(n)]
        fire_onset = stop + math.floor(after_s / STEP_S) + 1
        fire = Scenario(
            [(_labels(name, job), stuck), _running(job, n)],
            fire_onset,
            {**GROUP, "job": job},
            value_at=lambda minute: minute * STEP_S - stop * STEP_S,
        )
        healthy = [
            [(_labels(name, job), moving), _running(job, n)],
            [(_labels(name, job), stuck), _running(job, n, 0.0)],
        ]
        return fire, healthy
    raise KeyError(f"no promtool scenario for alert {alert}: add one to tests/rules/promtool_cases.py")


def minutes_needed(alert: str, expr: str, for_s: int) -> int:
    """Length of the series: the condition's onset, the for window and two evaluations after it."""
    extra = 0
    if alert in ("ATFTTrainingStalled", "ATFTExporterNotPushing"):
        extra = (
            math.floor(_threshold(expr, r"\btime\(\) - [a-z_]+(?:\{[^}]*\})?\s*>\s*([0-9.e+]+)", alert) / STEP_S) + 1
        )
    return 2 + extra + for_s // STEP_S + 3


def expand(template: str, labels: Mapping[str, str], value: float) -> str:
    """Expand the alert templates the rules use: ``{{ $labels.X }}`` and ``{{ $value | humanizeDuration }}``."""
    text = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m[1]], template)
    text = re.sub(r"\{\{\s*\$value\s*\|\s*humanizeDuration\s*\}\}", lambda m: humanize_duration(value), text)
    if "{{" in text:
        raise ValueError(f"template construct the test cannot expand: {template!r}")
    return text


def _series_text(series: Series) -> list[dict[str, str]]:
    out = []
    for labels, values in series:
        name = labels["__name__"]
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
        out.append({"series": f"{name}{{{selector}}}", "values": " ".join(f"{v:g}" for v in values)})
    return out


def promtool_tests(rules_file: str, rules: list[dict[str, Any]], job: str) -> dict[str, Any]:
    """A promtool test file for every alerting rule in ``rules`` (the rule dicts of ``rules_file``)."""
    tests = []
    for rule in rules:
        alert, expr, for_s = rule["alert"], rule["expr"], duration_s(rule.get("for", "0s"))
        n = minutes_needed(alert, expr, for_s)
        fire, healthy = scenarios(alert, expr, for_s, n, job)
        fires_at = fire.onset_min + for_s // STEP_S
        labels = {**fire.firing, "severity": rule["labels"]["severity"]}
        annotations = {k: expand(v, {**fire.firing}, fire.value_at(fires_at)) for k, v in rule["annotations"].items()}
        tests.append(
            {
                "interval": "1m",
                "input_series": _series_text(fire.series),
                "alert_rule_test": [
                    {"eval_time": f"{fires_at - 1}m", "alertname": alert, "exp_alerts": []},
                    {
                        "eval_time": f"{fires_at}m",
                        "alertname": alert,
                        "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}],
                    },
                ],
            }
        )
        minutes = sorted({*range(0, n, max(1, n // 8)), fires_at - 1, fires_at, n - 1})  # the boundary included
        for series in healthy:
            checks = [{"eval_time": f"{m}m", "alertname": alert, "exp_alerts": []} for m in minutes]
            tests.append({"interval": "1m", "input_series": _series_text(series), "alert_rule_test": checks})
    return {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests}
