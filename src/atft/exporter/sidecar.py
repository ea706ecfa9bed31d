"""The exporter's main loop: follow ``events.jsonl``, fold each event into the metrics, push every interval.

It ends in two ways, both with a final push and exit code 0: a stop request (SIGTERM from the kubelet, which
the CLI turns into :meth:`Exporter.stop`), or, with ``exit_on_end``, the stream's ``run_end`` (a plain
sidecar container must exit for its pod to complete; a native sidecar is stopped by the kubelet instead and
keeps following a training container that is restarted in the same pod). The final push is retried with
backoff for up to ``final_timeout`` seconds; if the Pushgateway stays down the exporter still exits 0 (it
logs it), because a sidecar's failure must never fail the training pod.

Scrape mode (``listen_port``, for clusters that scrape instead of push: the chart's PodMonitor) serves the
same series over HTTP with the job and grouping labels attached; the Pushgateway is then optional.

The grouping key is ``grouping`` plus ``run_id``: given, an event of another ``run_id`` is skipped (the
metrics of two runs must not mix); not given, it is taken from the first event, and nothing is pushed before
there is one.

Nothing in the file stops it: each line it cannot use (see :mod:`atft.exporter.lines`) is skipped, counted in
``atft_exporter_skipped_lines_total{reason}`` and logged (``skipped_line``, with its ``path:line``; the first
:data:`LOGGED_SKIPS` of each reason, then one ``skips_not_logged`` line: a file of garbage must not flood the
pod's log). A restarted exporter reads the file again from its start and so counts the same lines again into
a fresh state, which it pushes in place of the last one: the counts stay those of the file.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from atft.exporter.follow import RESTART, EventFollower, TooLong
from atft.exporter.lines import Skipped, read_line
from atft.exporter.log import log
from atft.exporter.metrics import MAX_LABEL_CHARS, RunMetrics
from atft.exporter.push import OWN_FAMILIES, Pusher
from atft.exporter.samples import Samples
from atft.telemetry.events import Event

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RESERVED_LABELS = ("job", "instance")
LOGGED_SKIPS = 10


@dataclass(frozen=True)
class ExporterOptions:
    """What ``atft exporter`` was asked to do (the CLI documents each flag)."""

    events: Path
    pushgateway: str
    job: str
    grouping: Mapping[str, str] = field(default_factory=dict)
    interval: float = 15.0
    max_backoff: float = 60.0
    push_timeout: float = 10.0
    final_timeout: float = 30.0
    exit_on_end: bool = True
    listen_port: int | None = None
    listen_address: str = "0.0.0.0"


def parse_grouping(items: Sequence[str]) -> dict[str, str]:
    """``["namespace=ml", "replica_index=0"]`` -> dict; a malformed item is a ValueError naming it."""
    grouping: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise ValueError(f"{item!r}: expected LABEL=VALUE with LABEL matching {LABEL_NAME.pattern}")
        if key in RESERVED_LABELS:
            raise ValueError(f"{item!r}: {key} is not a grouping label here (the job is --job; allowed: any other)")
        if not value:
            raise ValueError(f"{item!r}: empty value (the Pushgateway refuses empty grouping values)")
        if key in grouping:
            raise ValueError(f"{item!r}: {key} given twice")
        grouping[key] = value
    return grouping


class Exporter:
    """One exporter run over ``options``; :meth:`run` returns when it is done (see the module docstring)."""

    def __init__(self, options: ExporterOptions, poll_s: float = 1.0) -> None:
        self.options = options
        self.poll_s = min(poll_s, options.interval)
        self.follower = EventFollower(options.events)
        self.metrics = RunMetrics()
        self.own = Samples(OWN_FAMILIES)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self.own)
        self.registry.register(self.metrics)
        self.pusher = Pusher(
            options.pushgateway,
            options.job,
            self.registry,
            self.own,
            interval=options.interval,
            first_backoff=min(1.0, options.max_backoff),
            max_backoff=options.max_backoff,
            timeout=options.push_timeout,
        )
        self.run_id: str | None = options.grouping.get("run_id")
        self._skips_logged: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the HTTP thread reads the metrics while drain() writes them
        if options.listen_port is not None:
            served = CollectorRegistry(auto_describe=True)
            served.register(_Labelled(self.registry, self._scrape_labels, self._lock))
            start_http_server(options.listen_port, options.listen_address, registry=served)

    def stop(self) -> None:
        """Ask :meth:`run` to make its final push and return (safe from a signal handler)."""
        self._stop.set()

    @property
    def grouping(self) -> dict[str, str] | None:
        """The Pushgateway grouping key; None until the run id is known."""
        if self.run_id is None:
            return None
        return {**self.options.grouping, "run_id": self.run_id}

    def _scrape_labels(self) -> dict[str, str] | None:
        grouping = self.grouping
        return None if grouping is None else {"job": self.options.job, **grouping}

    def run(self) -> None:
        log("started", events=str(self.options.events), pushgateway=self.options.pushgateway, job=self.options.job)
        waiting_logged = False
        while True:
            self.drain()
            if not self.follower.exists and not waiting_logged:
                log("waiting_for_events", events=str(self.options.events))
                waiting_logged = True
            if self._stop.is_set() or (self.options.exit_on_end and self.metrics.finished):
                self.final_push("stop requested" if self._stop.is_set() else "run ended")
                return
            pushing = bool(self.options.pushgateway) and self.grouping is not None
            if pushing and self.grouping is not None and self.pusher.due():
                self.pusher.push(self.grouping)
            self._stop.wait(min(self.poll_s, self.pusher.wait_s()) if pushing else self.poll_s)

    def drain(self) -> int:
        """Fold every complete line now in the file into the metrics; returns how many were read."""
        with self._lock:
            return self._drain_locked()

    def _drain_locked(self) -> int:
        count = 0
        for line in self.follower.poll():
            if line is RESTART:
                log("stream_restarted", events=str(self.options.events), why="file replaced, truncated or rewritten")
                self.registry.unregister(self.metrics)
                self.metrics = RunMetrics()
                self.registry.register(self.metrics)
                self._skips_logged.clear()
                continue
            count += 1
            if isinstance(line, TooLong):
                limit = self.follower.max_line_bytes
                self._skip(Skipped("too_long", f"{line.length} bytes (lines over {limit} bytes are not read)"))
                continue
            event = read_line(line)
            if isinstance(event, Skipped):
                self._skip(event)
            elif (refused := self._refusal(event)) is not None:
                self._skip(refused)
            else:
                self.metrics.observe(event)
        return count

    def _refusal(self, event: Event) -> Skipped | None:
        """Why a valid event is not for this exporter's metrics: another run's, or over the label bounds."""
        if self.run_id is None:
            if not 0 < len(event.run_id) <= MAX_LABEL_CHARS:
                why = f"run_id of {len(event.run_id)} characters cannot be a grouping key (1 to {MAX_LABEL_CHARS})"
                return Skipped("label_limit", why)
            self.run_id = event.run_id
        if event.run_id != self.run_id:
            why = f"run_id {event.run_id[:80]!r} differs from the exporter's run_id {self.run_id!r}"
            return Skipped("other_run", why + " (one exporter follows one run)")
        return self.metrics.admit(event)

    def _skip(self, skipped: Skipped) -> None:
        """Count a skipped line; log the first LOGGED_SKIPS of each reason, then say that the rest are not."""
        self.metrics.inc("atft_exporter_skipped_lines_total", skipped.reason)
        self._skips_logged[skipped.reason] += 1
        logged = self._skips_logged[skipped.reason]
        if logged <= LOGGED_SKIPS:
            where = f"{self.options.events}:{self.follower.line_number}"
            log("skipped_line", where=where, reason=skipped.reason, error=skipped.detail)
        elif logged == LOGGED_SKIPS + 1:
            log("skips_not_logged", reason=skipped.reason, why=f"{LOGGED_SKIPS} logged; the metric counts the rest")

    def final_push(self, reason: str) -> None:
        """Push until it succeeds or ``final_timeout`` passes; log the outcome either way."""
        grouping = self.grouping
        if not self.options.pushgateway:
            log("exit", reason=reason, pushed=False, why="no --pushgateway (scrape mode)")
            return
        if grouping is None:
            log("exit", reason=reason, pushed=False, why="no event read, so no run id to push under")
            return
        deadline = time.monotonic() + self.options.final_timeout
        while not self.pusher.push(grouping):
            left = deadline - time.monotonic()
            if left <= 0:
                log("exit", reason=reason, pushed=False, why=f"final push failed for {self.options.final_timeout}s")
                return
            time.sleep(min(self.pusher.wait_s(), left))
        log("exit", reason=reason, pushed=True, grouping=grouping)


class _Labelled(Collector):
    """Scrape mode (a PodMonitor): the same series a push would create, with the job and grouping labels
    added here instead of by the Pushgateway (scraped with ``honorLabels: true``). Nothing before the run id
    is known."""

    def __init__(self, source: CollectorRegistry, labels: Callable[[], dict[str, str] | None], lock: threading.Lock):
        self.source, self.labels, self.lock = source, labels, lock

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            extra = self.labels()
            if extra is None:
                return
            families = list(self.source.collect())
        for family in families:
            out = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                out.add_sample(sample.name, {**sample.labels, **extra}, sample.value)
            yield out
