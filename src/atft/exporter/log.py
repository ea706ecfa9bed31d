"""The exporter's log: one JSON object per line on stderr, so a log pipeline parses it without a regex."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def log(event: str, **fields: Any) -> None:
    """Write ``{"time", "event", **fields}`` as one line to stderr and flush (the sidecar's log is read live)."""
    record = {"time": round(time.time(), 3), "logger": "atft.exporter", "event": event, **fields}
    print(json.dumps(record, default=str, sort_keys=False), file=sys.stderr, flush=True)
