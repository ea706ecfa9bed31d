"""Comparing two runs: every scalar of their reports side by side (``atft report A B``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from atft.report.build import build_report


def _scalars(report: dict[str, Any]) -> dict[str, float]:
    """Every numeric leaf of the report's metrics, oracle fractions, cost, selection, gradient flow, training
    signal, objective values and health event counts."""
    out: dict[str, float] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}", value)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            out[prefix] = float(node)

    for key in ("metrics", "fraction_of_oracle", "cost", "selection", "gradient_flow", "training_signal"):
        walk(key, report[key] or {})
    walk("objectives", {o["name"]: o["value"] for o in report["objectives"]})
    walk("health_events", report["health_events"]["counts"])
    return out


def compare(run_a: str | Path, run_b: str | Path) -> list[dict[str, Any]]:
    """Every scalar of the two runs' reports: ``{"metric", "a", "b", "diff"}`` with diff = b - a (NaN if absent)."""
    a, b = _scalars(build_report(run_a)), _scalars(build_report(run_b))
    keys = dict.fromkeys([*a, *b])
    return [
        {"metric": k, "a": a.get(k, math.nan), "b": b.get(k, math.nan), "diff": b.get(k, math.nan) - a.get(k, math.nan)}
        for k in keys
    ]
