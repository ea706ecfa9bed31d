"""Exporter memory over a long event file, and over a hostile one: peak RSS after following each.

Why: the sidecar follows a run for days; its memory limit (chart value exporter.resources) must depend neither
on how long the run is nor on what the file holds. The file is written by the real writer
(``atft.telemetry.events.TelemetrySink``) with the mix of a training run: a train and a signal record per logging
step, a gradient check of 13 components with four vanishing ones (the dead-encoder drill), failed collapse
checks, epoch ends. It is followed at 1%, 10% and 100% of ``--events`` (default 1M), each by a fresh process
(``Exporter.drain()``, then the push payload is built), which reports its peak RSS (VmHWM); the ratio of the
largest to the smallest is the first figure (1.0 = flat). VmHWM is read from /proc (Linux): ``ru_maxrss`` of a
child keeps the peak of the parent it was forked from.

The second figure is the same 10% file with hostile lines spread through it (see HOSTILE below: 100,000-deep
nesting, lines of 2 to 16 MiB, the widest lines still parsed (just under 1 MiB of ``[{},{},...]``), binary
garbage, torn and invalid lines, made-up label values beyond the exporter's bound, and a final 64 MiB line
without a newline), followed the same way: its peak RSS against the benign 10% file's, and the counts of
skipped lines by reason. (That the metrics of such a file are those of its good lines is tested:
tests/exporter/test_sidecar.py and test_exporter_cli.py.)

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atft.train.runtime import cpu_info

COMPONENTS = [f"component_{i}" for i in range(13)]
DEAD = COMPONENTS[:4]
HORIZONS = [1, 5, 10, 20]

CHILD = """
import json, sys, time
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from atft.exporter import Exporter, ExporterOptions
def vm_hwm_kib():  # this process's peak RSS; ru_maxrss would include the parent's, from before the exec
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
before = vm_hwm_kib()
exporter = Exporter(ExporterOptions(events=sys.argv[1], pushgateway="http://127.0.0.1:9", job="bench"))
start, cpu = time.perf_counter(), time.process_time()
lines = exporter.drain()
payload = generate_latest(exporter.registry)
samples = [s for f in text_string_to_metric_families(payload.decode()) for s in f.samples]
skipped = {s.labels["reason"]: s.value for s in samples if s.name == "atft_exporter_skipped_lines_total"}
print(json.dumps({"lines": lines, "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                  "series": len(exporter.metrics), "payload_bytes": len(payload), "rss_before_kib": before,
                  "peak_rss_kib": vm_hwm_kib(), "skipped": skipped}))
"""

MIB = 1 << 20
BAD_EVENT = b'{"v":1,"run_id":"bench","kind":"metric"}\n'


def _made_up(i: int) -> bytes:
    """A valid event with a component name never seen before (the exporter's label bound refuses it)."""
    from atft.telemetry.events import Event

    event = Event(run_id="bench", kind="metric", name="grad/grad_norm", step=1, epoch=0, component=f"x{i}", value=0.0)
    return event.to_json().encode() + b"\n"


def hostile_blocks() -> list[tuple[str, int, Callable[[int], bytes]]]:
    """(what, how many, the i-th line): the hostile lines, each block spread through the benign stream."""
    widest = b"[" + b"{}," * (MIB // 3 - 1) + b"{}]\n"  # just under 1 MiB: the most objects a parsed line makes
    garbage = bytes(b for b in range(256) if b != 10) * 4 + b"\n"
    return [
        ("nested 100,000 deep", 100, lambda i: b"[" * 100_000 + b"\n"),
        ("lines of 2 MiB", 16, lambda i: b"x" * (2 * MIB) + b"\n"),
        ("lines of 16 MiB", 4, lambda i: b'{"v":1,"message":"' + b"y" * (16 * MIB) + b'"}\n'),
        ("widest parsed lines (just under 1 MiB)", 32, lambda i: widest),
        ("binary garbage (1 KiB)", 10_000, lambda i: garbage),
        ("torn lines", 50_000, lambda i: b'{"component":null,"epo\n'),
        ("invalid events", 50_000, lambda i: BAD_EVENT),
        ("made-up component names", 20_000, _made_up),
    ]


def write_hostile(benign: Path, out: Path) -> int:
    """``benign``'s lines with every hostile block spread evenly through them, and a final 64 MiB line without
    a newline (a writer killed in the middle of it). Returns the number of hostile lines."""
    blocks = hostile_blocks()
    with open(benign, "rb") as fh:
        good = sum(1 for _ in fh)
    total = sum(count for _, count, _ in blocks)
    every = max(1, good // total)
    queue = itertools.chain.from_iterable((make(i) for i in range(count)) for _, count, make in blocks)
    with open(benign, "rb") as src, open(out, "wb") as dst:
        for n, line in enumerate(src):
            dst.write(line)
            if n % every == 0:
                dst.write(next(queue, b""))
        dst.writelines(queue)
        for _ in range(64):
            dst.write(b"z" * MIB)
    return total


def write_events(path: Path, n_events: int) -> int:
    """A training-like stream of at least ``n_events`` events through the real writer; returns the count."""
    from atft.health.events import HealthEvent
    from atft.telemetry.events import EventWriter, TelemetrySink

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
                sink.health(HealthEvent("vanishing_gradient", step, 0.0, component=c))
            sink.health(HealthEvent("degeneracy_check_failed", step, 0.001, horizon=5))
            written += len(COMPONENTS) + len(DEAD) + 1
        if step % 1000 == 0:
            sink.log_dict("epoch", step, {"epoch": epoch, "wall_s": 60.0, "train_loss": 0.5})
            written += 3
        if written >= n_events:
            break
    writer.close()
    return written + 1


def follow(path: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env, check=True)
    return dict(json.loads(done.stdout))


def _row(result: dict[str, Any]) -> str:
    return (
        f"{result['lines']:>10,} lines: peak RSS {result['peak_rss_kib'] / 1024:7.1f} MiB "
        f"(after imports {result['rss_before_kib'] / 1024:.1f} MiB), {result['series']:.0f} series, "
        f"push payload {result['payload_bytes'] / 1024:.1f} KiB, {result['lines'] / result['seconds']:,.0f} lines/s, "
        f"{result['cpu_seconds']:.1f} s CPU"
    )


def main() -> None:
    print(f"cpu: {cpu_info().describe()}")  # the processor beside the figures (README performance table)
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
        result["path"] = path
        rows.append(result)
        print(_row(result))
    small, large = rows[0], rows[-1]
    ratio = large["peak_rss_kib"] / small["peak_rss_kib"]
    growth = (large["peak_rss_kib"] - small["peak_rss_kib"]) / 1024
    print(
        f"peak RSS ratio {large['lines']:,.0f} / {small['lines']:,.0f} events: {ratio:.3f} "
        f"(+{growth:.1f} MiB for {large['lines'] / small['lines']:.0f}x the events; 1.0 = flat)"
    )
    if len(rows) > 2:
        print(f"peak RSS ratio of the two largest sizes: {large['peak_rss_kib'] / rows[-2]['peak_rss_kib']:.3f}")

    benign = rows[len(rows) // 2]
    hostile_path = args.dir / "events-hostile.jsonl"
    bad = write_hostile(benign["path"], hostile_path)
    size = hostile_path.stat().st_size / 2**20
    print(f"hostile: the {benign['lines']:,} events above, {bad:,} hostile lines, a torn 64 MiB tail ({size:.0f} MiB)")
    for what, count, _ in hostile_blocks():
        print(f"  {count:>7,} x {what}")
    hostile = follow(hostile_path)
    print(_row(hostile))
    print("  skipped: " + ", ".join(f"{reason} {n:,.0f}" for reason, n in hostile["skipped"].items()))
    print(
        f"peak RSS ratio hostile / benign ({benign['lines']:,} events each): "
        f"{hostile['peak_rss_kib'] / benign['peak_rss_kib']:.3f} "
        f"(+{(hostile['peak_rss_kib'] - benign['peak_rss_kib']) / 1024:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
