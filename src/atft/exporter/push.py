"""Pushes to the Pushgateway with exponential backoff; a failure is counted and logged, never raised.

Why never raised: the exporter is a sidecar of a training run that may last days. A Pushgateway that is
down, restarting or unreachable must not stop the training (it does not: the training only writes a file)
nor the exporter, which keeps folding events into its state and pushes the whole state again once the
Pushgateway is back (a push replaces the group: HTTP PUT), so nothing but resolution in time is lost.
Each failure increments ``atft_exporter_push_failures_total``, which arrives with the next successful push.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable, Mapping
from http.client import HTTPException

from prometheus_client import CollectorRegistry, push_to_gateway

from atft.exporter.log import log
from atft.exporter.samples import Family, Samples

PUSH_ERRORS = (urllib.error.URLError, HTTPException, OSError)

OWN_FAMILIES = {
    f.name: f
    for f in (
        Family("atft_exporter_pushes_total", "counter", "pushes to the Pushgateway that succeeded"),
        Family("atft_exporter_push_failures_total", "counter", "pushes to the Pushgateway that failed"),
    )
}


class Pusher:
    """``push()`` the registry as group ``job`` + ``grouping``; after a failure, :meth:`due` backs off.

    The delay after the n-th failure in a row is ``min(first_backoff * 2**(n-1), max_backoff)``; a success
    resets it to ``interval``. ``own`` holds the exporter's own counters (pushed with everything else).
    """

    def __init__(
        self,
        url: str,
        job: str,
        registry: CollectorRegistry,
        own: Samples,
        *,
        interval: float,
        first_backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.job, self.registry = url, job, registry
        self.interval, self.first_backoff, self.max_backoff = interval, first_backoff, max_backoff
        self.timeout, self.clock, self.own = timeout, clock, own
        own.touch("atft_exporter_pushes_total")
        own.touch("atft_exporter_push_failures_total")
        self.failed_in_a_row = 0
        self.next_at = clock()  # the first push is due at once

    def due(self) -> bool:
        return self.clock() >= self.next_at

    def wait_s(self) -> float:
        """Seconds until the next push is due (0 when due)."""
        return max(0.0, self.next_at - self.clock())

    def push(self, grouping: Mapping[str, str]) -> bool:
        """One push of the whole registry; True on success. Schedules the next one either way."""
        try:
            push_to_gateway(self.url, self.job, self.registry, grouping_key=dict(grouping), timeout=self.timeout)
        except PUSH_ERRORS as exc:
            self.own.inc("atft_exporter_push_failures_total")
            self.failed_in_a_row += 1
            delay = min(self.first_backoff * 2 ** (self.failed_in_a_row - 1), self.max_backoff)
            self.next_at = self.clock() + delay
            log("push_failed", url=self.url, failures_in_a_row=self.failed_in_a_row, retry_in_s=delay, error=str(exc))
            return False
        if self.failed_in_a_row:
            log("push_recovered", url=self.url, after_failures=self.failed_in_a_row)
        self.own.inc("atft_exporter_pushes_total")
        self.failed_in_a_row = 0
        self.next_at = self.clock() + self.interval
        return True
