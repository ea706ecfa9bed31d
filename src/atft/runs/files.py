"""Atomic file output and tabular input.

Every file atft writes goes to a temporary sibling, is fsynced and then renamed over the target, so a
killed process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from atft.errors import InputFileError


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it over ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(target: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``target`` atomically when closed without error."""
    with atomic_path(target) as tmp, open(tmp, mode) as fh:
        yield fh


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (the directory entry itself is fsynced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(table: pa.Table, target: str | Path, row_group_size: int = 256 * 1024) -> None:
    """Write ``table`` as Parquet (zstd) atomically."""
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


def read_table(path: str | Path) -> pa.Table:
    """Read a Parquet, CSV or gzipped CSV file; unreadable input is an :class:`InputFileError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pq.read_table(path)
        if name.endswith((".csv", ".csv.gz")):
            return pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{path}: cannot read as {name.rsplit('.', 1)[-1]}: {exc}") from exc
    raise InputFileError(f"{path}: unsupported format; allowed: .parquet, .csv, .csv.gz")
