"""Every name a benchmark imports from atft exists: a rename in the library must reach benchmarks/ too.

The benchmarks are not run by the test suite (they take minutes and print ratios, not verdicts), so
without this a moved or renamed class breaks them silently until someone measures again.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_a_benchmarks_atft_imports_resolve(path: Path) -> None:
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "atft":
            module = importlib.import_module(node.module)
            missing += [f"{node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)]
    assert missing == [], f"{path.name} imports names atft no longer has"
