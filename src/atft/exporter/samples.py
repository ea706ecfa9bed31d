"""A Prometheus collector that exports exactly the samples that were set: no zero before the first value.

Why not prometheus-client's ``Gauge``/``Counter`` objects: an unlabelled ``Gauge`` exports 0 from the moment
it exists, so a dashboard would show a training loss of 0 before the first logging step and a validation
RankIC of 0 before the first epoch, and their counters add a ``_created`` series each. Here a series exists
once it is set (counters once they are zeroed or incremented), and the whole state is a dict of floats,
so its size is the number of series, not the number of events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class Family:
    """One metric family: its full name (counters end in ``_total``), type, help text and label names."""

    name: str
    type: Literal["gauge", "counter"]
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.startswith("atft_"):
            raise ValueError(f"metric {self.name}: every atft metric starts with atft_")
        if (self.type == "counter") != self.name.endswith("_total"):
            raise ValueError(f"metric {self.name}: counters, and only counters, end in _total")


class Samples(Collector):
    """Samples by family name and label values; :meth:`collect` exports them (prometheus-client protocol)."""

    def __init__(self, families: Mapping[str, Family]) -> None:
        self.families = dict(families)
        self._values: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in self.families}

    def set(self, name: str, value: float, *labels: str) -> None:
        self._values[self._checked(name, labels)][labels] = value

    def inc(self, name: str, *labels: str, by: float = 1.0) -> None:
        series = self._values[self._checked(name, labels)]
        series[labels] = series.get(labels, 0.0) + by

    def touch(self, name: str, *labels: str) -> None:
        """Create the series at 0 unless it exists (a counter is exported at 0 before its first increment)."""
        self._values[self._checked(name, labels)].setdefault(labels, 0.0)

    def get(self, name: str, *labels: str) -> float | None:
        return self._values[name].get(labels)

    def __len__(self) -> int:
        """Number of series held (what memory grows with)."""
        return sum(len(series) for series in self._values.values())

    def collect(self) -> Iterator[Metric]:
        for name, series in self._values.items():
            if not series:
                continue
            family = self.families[name]
            metric: GaugeMetricFamily | CounterMetricFamily
            if family.type == "counter":
                metric = CounterMetricFamily(name, family.help, labels=family.labels)
            else:
                metric = GaugeMetricFamily(name, family.help, labels=family.labels)
            for labels, value in sorted(series.items()):
                metric.add_metric(list(labels), value)
            yield metric

    def _checked(self, name: str, labels: tuple[str, ...]) -> str:
        expected = self.families[name].labels
        if len(labels) != len(expected):
            raise ValueError(f"metric {name}: labels {expected}, got values {labels}")
        return name
