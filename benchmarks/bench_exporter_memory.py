"""Exporter memory over a long event file: peak RSS after following 10k, 100k and 1M events (default).

Why: the sidecar follows a run for days; its memory limit (chart value exporter.resources) must not depend on
how long the run is. The file is written by the real writer (``atft.telemetry.TelemetrySink``) with the mix
of a training run: a train and a signal record per logging step, a gradient check of 13 components with four
vanishing ones (the dead-encoder drill), failed collapse checks, epoch ends. Each size is followed by a fresh
process (``Exporter.drain()``, then the push payload is built), which reports its peak RSS; the ratio of the
largest to the smallest is the figure (1.0 = flat).

Usage: python benchmarks/bench_exporter_memory.py [--events 1000000] [--dir /tmp/atft-bench]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

COMPONENTS = [f"component_{i}" for i in range(13)]
DEAD = COMPONENTS[:4]
HORIZONS = [1, 5, 10, 20]

CHILD = """
import json, resource, sys, time
from prometheus_client import generate_latest
from atft.exporter import Exporter, ExporterOptions
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
exporter = Exporter(ExporterOptions(events=sys.argv[1], pushgateway="http://127.0.0.1:9", job="bench"))
start = time.perf_counter()
lines = exporter.drain()
payload = generate_latest(exporter.registry)
print(json.dumps({"lines": lines, "seconds": time.perf_counter() - start, "series": len(exporter.metrics),
                  "payload_bytes": len(payload), "rss_before_kib": before,
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_events(path: Path, n_events: int) -> int:
    """A training-like stream of at least ``n_events`` events through the real writer; returns the count."""
    from atft.telemetry import EventWriter, TelemetrySink

    path.unlink(missing_ok=True)
    writer = EventWriter(path, run_id="bench")
    sink = TelemetrySink(writer)
    written = 1
    for step in itertools.count(1):
        epoch = step // 1000
        sink.log_dict("train", step, {"epoch": epoch, "loss": 1.0 / step, "pinball": 0.2, "rank": 1.0, "lr": 1e-3})
        sink.log_dict("signal", step, {f"train_rank_ic_{h}d": 0.01 for h in HORIZONS} | {"dispersion_ema_5d": 0.3})
        written += 9
        if step % 5 == 0:
            sink.log_dict("grad", step, {f"grad_norm/{c}": (0.0 if c in DEAD else 0.1) for c in COMPONENTS})
            for c in DEAD:
                sink.log_dict("health", step, {"name": "vanishing_gradient", "component": c, "value": 0.0})
            sink.log_dict("health", step, {"name": "degeneracy_check_failed", "horizon": 5, "value": 0.001})
            written += len(COMPONENTS) + len(DEAD) + 1
        if step % 1000 == 0:
            sink.log_dict("epoch", step, {"epoch": epoch, "wall_s": 60.0, "train_loss": 0.5})
            written += 3
        if written >= n_events:
            break
    writer.close()
    return written + 1


def follow(path: Path) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env, check=True)
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("ATFT_BENCH_CACHE", "/tmp/atft-bench")))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    sizes = sorted({max(1, args.events // 100), max(1, args.events // 10), args.events})
    full = args.dir / f"events-{args.events}.jsonl"
    start = time.perf_counter()
    total = write_events(full, args.events)
    print(f"wrote {total:,} events ({full.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s")
    rows = []
    for size in sizes:
        path = full if size == args.events else args.dir / f"events-{size}.jsonl"
        if path != full:
            with open(full, "rb") as src, open(path, "wb") as dst:
                dst.writelines(itertools.islice(src, size))
        result = follow(path)
        rows.append(result)
        print(
            f"{result['lines']:>10,} events: peak RSS {result['peak_rss_kib'] / 1024:7.1f} MiB "
            f"(after imports {result['rss_before_kib'] / 1024:.1f} MiB), {result['series']:.0f} series, "
            f"push payload {result['payload_bytes'] / 1024:.1f} KiB, "
            f"{result['lines'] / result['seconds']:,.0f} events/s"
        )
    small, large = rows[0], rows[-1]
    ratio = large["peak_rss_kib"] / small["peak_rss_kib"]
    growth = (large["peak_rss_kib"] - small["peak_rss_kib"]) / 1024
    print(
        f"peak RSS ratio {large['lines']:,.0f} / {small['lines']:,.0f} events: {ratio:.3f} "
        f"(+{growth:.1f} MiB for {large['lines'] / small['lines']:.0f}x the events; 1.0 = flat)"
    )
    if len(rows) > 2:
        print(f"peak RSS ratio of the two largest sizes: {large['peak_rss_kib'] / rows[-2]['peak_rss_kib']:.3f}")


if __name__ == "__main__":
    main()
