"""The metrics exporter sidecar: the run's ``events.jsonl`` -> Prometheus metrics -> a Pushgateway.

``follow`` tails the event file from its start (before it exists, torn last lines, restarts, lines over 1 MiB),
``lines`` turns a line into an event or the reason it is skipped, ``metrics`` maps events to named Prometheus
series, ``push`` pushes with backoff, ``sidecar`` is the loop that ties them together. ``atft exporter``
(``cli/atft_cli/commands/exporter.py``) is the command; docs/monitoring.md is the user's page.
"""

from atft.exporter.metrics import FAMILIES, RunMetrics
from atft.exporter.sidecar import Exporter, ExporterOptions, parse_grouping

__all__ = ["FAMILIES", "Exporter", "ExporterOptions", "RunMetrics", "parse_grouping"]
