"""Loading the feature Parquet into the dense panel, against pyarrow's raw read of the same file.

    python benchmarks/bench_panel_load.py [--stocks 3800 --days 1250 --repeats 3]

Prints three timings, each the median of ``--repeats`` runs in this process: pyarrow's ``read_table``
(the floor), ``atft.data.panel.load_panel`` and a straightforward baseline (read_table, then scatter each
column into the dense array with fancy indexing); the ratios to the raw read; and, from a fresh child
process, the peak RSS of a load against the dense panel's own bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _panels import HORIZONS, full_size_panel

from atft.data.panel import load_panel
from atft.train.runtime import cpu_info


def naive_load(path: Path) -> np.ndarray:
    """Baseline: read everything, then one fancy-indexed scatter per feature column."""
    table = pq.read_table(path)
    dates, day_idx = np.unique(table.column("date").to_numpy(), return_inverse=True)
    codes, stock_idx = np.unique(
        pc.cast(table.column("code"), "string").to_numpy(zero_copy_only=False), return_inverse=True
    )
    names = [c for c in table.column_names if c.startswith(("feat_", "target_", "return_"))]
    dense = np.full((len(dates), len(codes), len(names)), np.nan, np.float32)
    for j, name in enumerate(names):
        dense[day_idx, stock_idx, j] = table.column(name).to_numpy()
    return dense


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times)


def child_peak(path: Path) -> dict[str, float]:
    """Peak RSS of one load in a fresh process (so nothing else in this process inflates it)."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a child would report this process's peak
    code = (
        "import json, re, sys; from atft.data.panel import load_panel; "
        "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) * 1024; "
        "base = hwm(); "
        f"p = load_panel(sys.argv[1], {HORIZONS}); "
        "print(json.dumps({'base': base, 'peak': hwm(), 'dense': p.nbytes}))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    print(f"cpu: {cpu_info().describe()}")  # the processor beside the figures (README performance table)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stocks", type=int, default=3800)
    parser.add_argument("--days", type=int, default=1250)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = full_size_panel(args.stocks, args.days)
    size = pq.ParquetFile(path).metadata
    print(f"panel: {path} ({size.num_rows:,} rows x {size.num_columns} columns, {path.stat().st_size / 2**20:.0f} MiB)")
    read = timed(lambda: pq.read_table(path), args.repeats)
    ours = timed(lambda: load_panel(path, HORIZONS), args.repeats)
    naive = timed(lambda: naive_load(path), args.repeats)
    mem = child_peak(path)
    print(f"{'pyarrow read_table':<28}{read:8.2f} s   1.00x")
    print(f"{'atft load_panel':<28}{ours:8.2f} s   {ours / read:.2f}x   (target <= 1.5x)")
    print(f"{'column scatter baseline':<28}{naive:8.2f} s   {naive / read:.2f}x")
    grown = mem["peak"] - mem["base"]
    print(
        f"peak RSS {mem['peak'] / 2**30:.2f} GiB, of which the load added {grown / 2**30:.2f} GiB = "
        f"{grown / mem['dense']:.2f}x the dense panel ({mem['dense'] / 2**30:.2f} GiB; target <= 2x); "
        f"{mem['base'] / 2**30:.2f} GiB was the interpreter with torch and pyarrow imported"
    )


if __name__ == "__main__":
    main()
