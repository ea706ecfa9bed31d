"""What the training monitors measured, read from a run's ``events.jsonl``: health objectives and sections.

The monitors of :mod:`atft.health` log what they measure (``grad`` and ``signal`` records, each epoch's
learning-signal verdict in its ``epoch`` record), each finding as a ``health`` record, and running counters
(``events/<name>`` and ``degeneracy_*_<h>d`` in the ``epoch`` and ``signal`` records; docs/run-format.md). The
report reads those records and counters -- it never parses log text -- and never claims health that was not
measured: an objective whose measurement is absent FAILS and says what is missing.

Objectives (``{name, threshold, value, passed, detail}``; value = number of findings, threshold 0):

* ``all_components_received_gradient`` (threshold 0): value = the smallest ``grad_norm/<component>`` of the
  ``preflight`` record; every one must be > 0;
* ``no_vanishing_gradient`` / ``no_exploding_gradient``: no ``vanishing_gradient`` / ``exploding_gradient``
  event; needs ``grad`` records, else gradient flow was not measured;
* ``no_collapse``: no ``predictions_collapsed`` event; needs ``degeneracy_checks_<h>d`` > 0 for every horizon in
  the last ``signal`` or ``epoch`` record (the guard checked);
* ``learning_signal``: the signal monitor's LAST epoch-end verdict (``epoch_train_rank_ic_t_<h>d`` of the last
  ``epoch`` record that has any) passed on every horizon: t >= ``health.signal.z`` (value = horizons failing
  it, a horizon without a verdict in that record among them). No epoch-end verdict at all (every epoch had
  fewer than ``health.signal.window`` training days with a RankIC, or the run stopped before an epoch end): not
  judged (value NaN), FAIL. ``weak_learning_signal`` warnings of the rolling window are counted in the detail
  but fail nothing: a healthy run on real prices has them early on;
* ``no_dead_inputs``: no ``dead_input`` event; needs a ``signal`` record after :data:`DEAD_INPUT_MIN_DAYS`
  training days (step x ``train.accumulate_days``).

An event count is the number of ``health`` records of that name, or the loop's ``events/<name>`` counter (last
``epoch`` or ``cost`` record) where that is larger -- a missing record never passes an objective.

Sections: ``gradient_flow`` (first / median / last of each ``grad_norm/<c>`` and ``act_grad/<name>`` series),
``resets_per_epoch`` (differences of the cumulative ``degeneracy_resets_<h>d`` of the ``epoch`` records),
``health_events`` (every ``health`` record, counts by name, the loop's counters) and ``training_signal`` (the last
``signal`` record's rolling training RankIC and its t per horizon).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from atft.config import Config
from atft.health.events import DEAD_INPUT_MIN_DAYS

Record = dict[str, Any]
EVENT_KEYS = ("step", "name", "severity", "component", "horizon", "feature", "value", "message")
MD_EVENTS = 50
"""At most this many health records are listed in report.md (report.json holds all)."""


def of_kind(records: list[Record], kind: str) -> list[Record]:
    return [r for r in records if r["kind"] == kind]


def objective(name: str, threshold: float, value: float, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "threshold": threshold, "value": value, "passed": bool(passed), "detail": detail}


def _number(value: Any) -> float:
    """A logged number as float; null (NaN in strict JSON) and anything else non-numeric as NaN."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _events_named(records: list[Record], name: str) -> list[Record]:
    return [r for r in of_kind(records, "health") if r.get("name") == name]


def _counters(records: list[Record]) -> dict[str, float]:
    """The loop's ``events/<name>`` counters from the last ``epoch`` or ``cost`` record that has any."""
    for r in reversed(records):
        if r["kind"] in ("epoch", "cost") and (found := {k: v for k, v in r.items() if k.startswith("events/")}):
            return {k.removeprefix("events/"): _number(v) for k, v in sorted(found.items())}
    return {}


def _found(records: list[Record], name: str) -> tuple[list[Record], int, str]:
    """The health records named ``name``, the count, and a note where the loop's counter says more."""
    found = _events_named(records, name)
    counted = _counters(records).get(name, 0.0)
    if counted > len(found):
        note = f"; the events/{name} counter says {counted:g}, events.jsonl holds {len(found)} {name} records"
        return found, int(counted), note
    return found, len(found), ""


def _steps(steps: list[int]) -> str:
    shown = ", ".join(map(str, steps[:5])) + (f", ... {len(steps) - 5} more" if len(steps) > 5 else "")
    return f"step{'s' if len(steps) > 1 else ''} {shown}"


def _where(found: list[Record], key: str, unit: str = "") -> str:
    """``encoder (steps 1, 50), graph (step 1)``: where the events were, in order of first appearance."""
    steps: dict[str, list[int]] = {}
    for r in found:
        steps.setdefault(f"{r.get(key)}{unit}", []).append(r["step"])
    return ", ".join(f"{where} ({_steps(s)})" for where, s in steps.items())


def _received_gradient(records: list[Record]) -> dict[str, Any]:
    name = "all_components_received_gradient"
    preflight = of_kind(records, "preflight")
    if not preflight:
        return objective(name, 0.0, math.nan, False, "events.jsonl has no preflight record")
    norms = {k.removeprefix("grad_norm/"): _number(v) for k, v in preflight[-1].items() if k.startswith("grad_norm/")}
    if not norms:
        return objective(name, 0.0, math.nan, False, "the preflight record has no grad_norm/<component> keys")
    dead = [f"{c} ({v})" for c, v in norms.items() if not (math.isfinite(v) and v > 0)]
    detail = f"no gradient in: {', '.join(dead)}" if dead else f"{len(norms)} components: {', '.join(norms)}"
    return objective(name, 0.0, float(np.min(list(norms.values()))), not dead, detail)


def _gradient_events(name: str, event: str, records: list[Record]) -> dict[str, Any]:
    grads = of_kind(records, "grad")
    found, count, note = _found(records, event)
    where = f"{count} {event} event(s) in {_where(found, 'component')}" if found else f"{count} {event} event(s)"
    if found:
        where += f"; first at step {found[0]['step']}: {found[0].get('message', '')}"
    if not grads:
        detail = "gradient flow was not measured: events.jsonl has no grad records"
        return objective(name, 0, count if count else math.nan, False, detail + (f"; {where}" if count else ""))
    if count:
        return objective(name, 0, count, False, where + note)
    steps = f"steps {grads[0]['step']}..{grads[-1]['step']}"
    return objective(name, 0, 0, True, f"{len(grads)} grad records ({steps}), no {event} event")


def _last_number(records: list[Record], key: str, kinds: tuple[str, ...]) -> float:
    return next((_number(r[key]) for r in reversed(records) if r["kind"] in kinds and key in r), math.nan)


def _no_collapse(records: list[Record], horizons: list[int]) -> dict[str, Any]:
    name = "no_collapse"
    found, count, note = _found(records, "predictions_collapsed")
    n_resets = _found(records, "degeneracy_reset")[1]
    resets = f"{n_resets} degeneracy_reset event(s)"
    if count:
        where = _where(found, "horizon", "d") if found else "an unrecorded horizon"
        return objective(name, 0, count, False, f"predictions collapsed at {where}; {resets}{note}")
    checks = {h: _last_number(records, f"degeneracy_checks_{h}d", ("signal", "epoch")) for h in horizons}
    unchecked = [f"{h}d" for h, n in checks.items() if not n > 0]
    if unchecked:
        detail = f"collapse was not measured: the degeneracy guard made no check at {', '.join(unchecked)}"
        return objective(name, 0, math.nan, False, f"{detail} (degeneracy_checks_<h>d of the signal/epoch records)")
    done = ", ".join(f"{h}d: {n:g}" for h, n in checks.items())
    return objective(name, 0, 0, True, f"no predictions_collapsed event in the degeneracy checks ({done}); {resets}")


def _learning_signal(records: list[Record], cfg: Config) -> dict[str, Any]:
    """Passes when the last epoch's verdict does: t >= z at every horizon, or below it only where the monitor
    called the failure ``learning_signal_unconfirmed`` (too few independent periods to judge alone)."""
    name, horizons, z = "learning_signal", cfg.data.horizons, cfg.health.signal.z
    n_weak, n_missing = len(_events_named(records, "weak_learning_signal")), _found(records, "no_learning_signal")[1]
    unconfirmed_events = _events_named(records, "learning_signal_unconfirmed")
    events = (
        f"{n_weak} weak_learning_signal warning(s), {len(unconfirmed_events)} learning_signal_unconfirmed warning(s), "
        f"{n_missing} no_learning_signal event(s) in the run"
    )
    keys = [f"epoch_train_rank_ic_t_{h}d" for h in horizons]
    checked = [r for r in of_kind(records, "epoch") if any(k in r for k in keys)]
    if not checked:
        detail = (
            "learning signal was not judged: no epoch record has an epoch-end verdict (epoch_train_rank_ic_t_<h>d; "
            f"an epoch needs health.signal.window = {cfg.health.signal.window} training days with a RankIC); {events}"
        )
        return objective(name, 0, math.nan, False, detail)
    last = checked[-1]
    ts = {h: _number(last.get(f"epoch_train_rank_ic_t_{h}d")) for h in horizons}
    unconfirmed = {r.get("horizon") for r in unconfirmed_events if r["step"] == last["step"]}
    failing = [h for h, t in ts.items() if not t >= z and h not in unconfirmed]
    where = f"epoch {last.get('epoch')} (step {last['step']})"
    if failing:
        shown = ", ".join(
            f"{h}d t = {ts[h]:.3g}" if f"epoch_train_rank_ic_t_{h}d" in last else f"{h}d no verdict" for h in failing
        )
        detail = f"no learning signal over the training days of {where}: {shown} (z = {z:g}); {events}"
        return objective(name, 0, len(failing), False, detail)
    shown = ", ".join(f"{h}d {t:.3g}" + (" (unconfirmed)" if h in unconfirmed else "") for h, t in ts.items())
    return objective(name, 0, 0, True, f"epoch-end training RankIC t at {where}: {shown} (z = {z:g}); {events}")


def _no_dead_inputs(records: list[Record], cfg: Config) -> dict[str, Any]:
    name = "no_dead_inputs"
    found, count, note = _found(records, "dead_input")
    if count:
        first: dict[Any, Record] = {}
        for r in found:
            first.setdefault(r.get("feature"), r)
        listed = ", ".join(f"{f} (step {r['step']}: {r.get('message', '')})" for f, r in first.items())
        return objective(name, 0, count, False, f"dead input(s): {listed or 'not recorded'}{note}")
    judged = [r for r in of_kind(records, "signal") if r["step"] * cfg.train.accumulate_days >= DEAD_INPUT_MIN_DAYS]
    if not judged:
        detail = f"dead inputs were not measured: no signal record after {DEAD_INPUT_MIN_DAYS} training days"
        return objective(name, 0, math.nan, False, detail)
    return objective(name, 0, 0, True, f"no dead_input event; inputs judged at {len(judged)} signal records")


def health_objectives(records: list[Record], cfg: Config) -> list[dict[str, Any]]:
    """The health objectives, in report order (see the module docstring)."""
    return [
        _received_gradient(records),
        _gradient_events("no_vanishing_gradient", "vanishing_gradient", records),
        _gradient_events("no_exploding_gradient", "exploding_gradient", records),
        _no_collapse(records, cfg.data.horizons),
        _learning_signal(records, cfg),
        _no_dead_inputs(records, cfg),
    ]


def _series(records: list[Record], prefix: str) -> dict[str, dict[str, Any]]:
    """Per ``<prefix><name>`` key: first, median (of the finite values), last, counts and steps."""
    points: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for key, value in r.items():
            if key.startswith(prefix):
                points.setdefault(key.removeprefix(prefix), []).append((r["step"], _number(value)))
    out = {}
    for name, series in points.items():
        values = np.array([v for _, v in series])
        finite = values[np.isfinite(values)]
        out[name] = {
            "first": float(values[0]),
            "median": float(np.median(finite)) if finite.size else math.nan,
            "last": float(values[-1]),
            "n": len(series),
            "non_finite": int(values.size - finite.size),
            "first_step": series[0][0],
            "last_step": series[-1][0],
        }
    return out


def _resets_per_epoch(records: list[Record], horizons: list[int]) -> list[dict[str, Any]]:
    """Per epoch record and horizon: resets during that epoch (the cumulative counter minus the previous one)."""
    rows, before = [], dict.fromkeys(horizons, 0.0)
    for r in of_kind(records, "epoch"):
        row: dict[str, Any] = {"epoch": r.get("epoch"), "step": r.get("step")}
        for h in horizons:
            total = _number(r.get(f"degeneracy_resets_{h}d"))
            row[f"{h}d"] = total - before[h] if math.isfinite(total) else math.nan
            before[h] = total if math.isfinite(total) else before[h]
        rows.append(row)
    return rows


def _training_signal(records: list[Record], horizons: list[int]) -> dict[str, Any] | None:
    signal = of_kind(records, "signal")
    if not signal:
        return None
    last = signal[-1]
    per = {
        f"{h}d": {"rank_ic": _number(last.get(f"train_rank_ic_{h}d")), "t": _number(last.get(f"train_rank_ic_t_{h}d"))}
        for h in horizons
    }
    return {"step": last["step"], "epoch": last.get("epoch"), "horizons": per}


def health_sections(records: list[Record], horizons: list[int]) -> dict[str, Any]:
    """The report.json sections ``gradient_flow``, ``resets_per_epoch``, ``health_events``, ``training_signal``."""
    grads = of_kind(records, "grad")
    events = [{k: r.get(k) for k in EVENT_KEYS} for r in of_kind(records, "health")]
    return {
        "gradient_flow": {"components": _series(grads, "grad_norm/"), "activations": _series(grads, "act_grad/")},
        "resets_per_epoch": _resets_per_epoch(records, horizons),
        "health_events": {
            "counts": dict(sorted(Counter(e["name"] for e in events).items())),
            "counters": _counters(records),
            "events": events,
        },
        "training_signal": _training_signal(records, horizons),
    }


def _place(event: dict[str, Any]) -> str:
    """Where a health event applies: its component, horizon or feature."""
    if event["horizon"] is not None:
        return f"{event['horizon']}d"
    return str(event["component"] or event["feature"] or "")


def health_tables(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(title, rows) of the health sections, in report.md order."""
    flow = report["gradient_flow"]
    rows = [{"series": f"grad_norm/{c}", **s} for c, s in flow["components"].items()]
    rows += [{"series": f"act_grad/{a}", **s} for a, s in flow["activations"].items()]
    health = report["health_events"]
    names = dict.fromkeys([*health["counts"], *health["counters"]])
    counts = [{"event": n, "records": health["counts"].get(n, 0), "counter": health["counters"].get(n)} for n in names]
    events = health["events"]
    shown = [
        {"step": e["step"], "name": e["name"], "severity": e["severity"], "where": _place(e), "value": e["value"]}
        | {"message": e["message"] or ""}
        for e in events[:MD_EVENTS]
    ]
    title = "Health events" + (f" (first {MD_EVENTS} of {len(events)}; all in report.json)" * (len(events) > MD_EVENTS))
    signal = report["training_signal"]
    signal_title = (
        "Training signal (no signal record)" if signal is None else f"Training signal (step {signal['step']})"
    )
    signal_rows = [] if signal is None else [{"horizon": h, **v} for h, v in signal["horizons"].items()]
    return [
        ("Gradient flow (grad records: L2 norm per component, activation-gradient hooks)", rows),
        ("Degeneracy resets per epoch", report["resets_per_epoch"]),
        ("Health event counts (health records; the loop's events/<name> counter)", counts),
        (title, shown),
        (signal_title + ": rolling training RankIC and its t", signal_rows),
    ]
