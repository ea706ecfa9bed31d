"""The one output sink: data on stdout as a table, JSON or YAML; hints and errors on stderr.

On a terminal a table is a rich table (styled, fitted to the window) and hints are dimmed. Anywhere else --
a pipe, a file, ``kubectl logs``, CI -- the same data comes as complete plain lines: a table is aligned text
with every cell whole (no ``…``, no wrapping at 80 columns), a hint is one line, and no escape code is
written, whatever ``FORCE_COLOR`` says. A terminal is a stream whose ``isatty()`` says so.
"""

from __future__ import annotations

import json
import numbers
import sys
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TextIO

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text


class Stream:
    """``sys.stdout`` or ``sys.stderr``, looked up at each print (tests swap them): rich on a terminal,
    plain text elsewhere."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def file(self) -> TextIO:
        stream: TextIO = getattr(sys, self.name)
        return stream

    @property
    def is_terminal(self) -> bool:
        try:
            return bool(self.file.isatty())
        except (AttributeError, ValueError):  # a closed stream, or one without isatty
            return False

    def print(self, renderable: str | Text | Table, highlight: bool = False) -> None:
        """Print ``renderable``; a ``str`` is text, never rich markup (a value with brackets stays whole)."""
        if self.is_terminal:
            shown = Text(renderable) if isinstance(renderable, str) else renderable
            Console(file=self.file, soft_wrap=True).print(shown, highlight=highlight)
            return
        if isinstance(renderable, Table):
            raise TypeError("a rich Table is for a terminal; emit() prints a plain table elsewhere")
        text = renderable.plain if isinstance(renderable, Text) else renderable
        self.file.write(text + "\n")
        self.file.flush()


stdout = Stream("stdout")
stderr = Stream("stderr")


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
        if not stdout.is_terminal:
            stdout.print(plain_table(rows, title))
            return
        table = Table(title=title)
        for column in rows[0] if rows else []:
            table.add_column(str(column))
        for row in rows:
            table.add_row(*(_cell(v) for v in row.values()))
        stdout.print(table)


def plain_table(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> str:
    """``rows`` as aligned text: the title, a header line, one line per row; every cell whole.

    Columns are those of the first row (as the rich table); two spaces apart; numeric columns right-aligned.
    A line break or tab inside a cell is written as a space, so each row stays one line.
    """
    lines = [_flat(title)] if title else []
    if not rows:
        return "\n".join(lines)
    columns = list(rows[0])
    cells = [[_flat(str(c)) for c in columns]] + [[_flat(_cell(v)) for v in row.values()] for row in rows]
    widths = [max(len(line[i]) for line in cells if i < len(line)) for i in range(len(columns))]
    numeric = [all(_numeric(list(row.values()), i) for row in rows) for i in range(len(columns))]
    for line in cells:
        padded = [cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(line, widths, numeric, strict=False)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _numeric(values: list[Any], i: int) -> bool:
    return i >= len(values) or (isinstance(values[i], numbers.Real) and not isinstance(values[i], bool))


def _flat(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)


def hint(message: str) -> None:
    if stderr.is_terminal:
        stderr.print(Text.assemble(("hint:", "dim"), " ", message))
    else:
        stderr.print(f"hint: {message}")


def info(message: str) -> None:
    stderr.print(message)
