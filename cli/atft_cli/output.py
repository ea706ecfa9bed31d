"""The one output sink: data on stdout as a table, JSON or YAML; hints and errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def emit(data: Mapping[str, Any] | Sequence[Mapping[str, Any]], fmt: Format, title: str | None = None) -> None:
    """Print ``data`` (one record or a list of rows) in the chosen format."""
    if fmt is Format.json:
        print(json.dumps(data, indent=2, default=str))
    elif fmt is Format.yaml:
        print(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False), end="")
    else:
        rows = [data] if isinstance(data, Mapping) else list(data)
        table = Table(title=title)
        for column in rows[0] if rows else []:
            table.add_column(str(column))
        for row in rows:
            table.add_row(*(_cell(v) for v in row.values()))
        stdout.print(table)


def hint(message: str) -> None:
    stderr.print(f"[dim]hint:[/dim] {message}")


def info(message: str) -> None:
    stderr.print(message)
