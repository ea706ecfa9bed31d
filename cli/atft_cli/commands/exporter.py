"""``atft exporter``: the metrics sidecar. Follows a run's events.jsonl and pushes it to a Pushgateway."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import typer

HELP = "\n\n".join(
    [
        "Follow a run's events.jsonl from its start and push its metrics to a Pushgateway every interval.",
        "The file may not exist yet; a torn last line is read once its newline is written; a resumed run appends "
        "to the same file and is followed on. The group pushed is --job plus the --grouping labels plus run_id "
        "(taken from the events when not given). On SIGTERM, or after the run's end event (unless "
        "--no-exit-on-end), it makes a final push and exits 0. A Pushgateway that is down never stops it: pushes "
        "are retried with backoff and counted in atft_exporter_push_failures_total. Nothing in the file stops it "
        "either: a line it cannot use (not JSON, over 1 MiB, nested too deep, another run's event) is skipped and "
        "counted in atft_exporter_skipped_lines_total{reason}. A run ended by SIGTERM (preempted) is "
        'atft_run_state{state="preempted"}, not failed. Metrics: docs/monitoring.md.',
        "In a PyTorchJob pod (the chart's sidecar): --grouping namespace=NS --grouping replica_type=$(REPLICA_TYPE) "
        "--grouping replica_index=$(REPLICA_INDEX), the variables set through the downward API from the pod's "
        "training.kubeflow.org/replica-type and replica-index labels.",
        "In a TrainJob every node pod runs the sidecar (one pod template for all nodes), but only rank 0 writes "
        "events.jsonl; the others would push its series again. The chart passes --replica-index $(REPLICA_INDEX) "
        "(the pod's job completion index): any index but 0 pushes nothing and waits for SIGTERM (--no-exit-on-end, "
        "a native sidecar, which must not exit) or exits 0 at once (a plain container, so that its pod completes).",
        "Examples:\n\n"
        "  atft exporter --events runs/demo/events.jsonl --pushgateway http://localhost:9091\n"
        "  atft exporter --events runs/demo/events.jsonl --listen-port 9400            # scrape mode: /metrics\n"
        "  atft exporter --events runs/demo/events.jsonl --pushgateway http://localhost:9091 --job demo "
        "--grouping team=research --interval 5",
    ]
)


def exporter(
    events: Annotated[Path, typer.Option("--events", help="the run's events.jsonl (need not exist yet)")],
    pushgateway: Annotated[
        str | None, typer.Option("--pushgateway", help="Pushgateway URL, http(s)://HOST:PORT (push mode)")
    ] = None,
    job: Annotated[str, typer.Option("--job", help="the job label of the pushed group")] = "atft",
    grouping: Annotated[
        list[str] | None,
        typer.Option(
            "--grouping",
            metavar="LABEL=VALUE",
            help="a grouping-key label of the pushed group; repeat it (namespace, replica_type, replica_index, run_id)",
        ),
    ] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="seconds between pushes")] = 15.0,
    max_backoff: Annotated[
        float, typer.Option("--max-backoff", min=0.1, help="longest wait between retries of a failed push (s)")
    ] = 60.0,
    push_timeout: Annotated[float, typer.Option("--push-timeout", min=0.1, help="HTTP timeout of a push (s)")] = 10.0,
    final_timeout: Annotated[
        float, typer.Option("--final-timeout", min=0.0, help="how long the final push is retried before exiting (s)")
    ] = 30.0,
    listen_port: Annotated[
        int | None,
        typer.Option(
            "--listen-port",
            min=1,
            max=65535,
            help="also serve the metrics on this port at /metrics (scrape mode, the chart's PodMonitor), with the "
            "job and grouping labels attached",
        ),
    ] = None,
    listen_address: Annotated[str, typer.Option("--listen-address", help="address of --listen-port")] = "0.0.0.0",
    exit_on_end: Annotated[
        bool,
        typer.Option(
            help="exit after the run's end event (a plain sidecar container); --no-exit-on-end for a native "
            "sidecar, which the kubelet stops with SIGTERM and which keeps following a restarted training container"
        ),
    ] = True,
    replica_index: Annotated[
        int,
        typer.Option(
            "--replica-index",
            min=0,
            help="this pod's node index; any but 0 pushes nothing (only rank 0 writes the events), see above",
        ),
    ] = 0,
) -> None:
    from atft.exporter import Exporter, ExporterOptions, parse_grouping

    if pushgateway is None and listen_port is None:
        raise typer.BadParameter("give --pushgateway URL (push), --listen-port PORT (scrape) or both")
    url = urlparse(pushgateway or "http://unused")
    if url.scheme not in ("http", "https") or not url.netloc:
        raise typer.BadParameter(f"{pushgateway!r}: expected http(s)://HOST:PORT", param_hint="--pushgateway")
    try:
        labels = parse_grouping(grouping or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grouping") from None
    options = ExporterOptions(
        events=events,
        pushgateway=pushgateway or "",
        job=job,
        grouping=labels,
        interval=interval,
        max_backoff=max_backoff,
        push_timeout=push_timeout,
        final_timeout=final_timeout,
        exit_on_end=exit_on_end,
        listen_port=listen_port,
        listen_address=listen_address,
    )
    if replica_index != 0:
        _idle(replica_index, exit_on_end)
        return
    sidecar = Exporter(options)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sidecar.stop())
    sidecar.run()


def _idle(replica_index: int, exit_on_end: bool) -> None:
    """Not node 0: follow and push nothing; wait for SIGTERM, or return at once for a plain container."""
    from atft.exporter.log import log

    log("idle", replica_index=replica_index, why="only replica 0 pushes: rank 0 alone writes the events")
    if exit_on_end:
        log("exit", reason="not replica 0", pushed=False)
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log("exit", reason="stop requested", pushed=False)


exporter.__doc__ = HELP
