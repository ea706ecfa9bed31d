"""pyproject.toml lists the packages (the chart and configs are mapped in): none under src/ or cli/ is left out."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_and_the_data_maps_to_the_one_copy() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(init.parent.relative_to(root).parts)
        for root in (ROOT / "src", ROOT / "cli")
        for init in root.rglob("__init__.py")
    }
    listed = set(tool["packages"])
    assert found - listed == set(), "add these to [tool.setuptools] packages, or the wheel leaves them out"
    assert listed - found == {"atft_cli.chart", "atft_cli.configs"}
    assert tool["package-dir"]["atft_cli.chart"] == "helm/atft" and tool["package-dir"]["atft_cli.configs"] == "configs"
    assert not (ROOT / "cli" / "atft_cli" / "chart").exists(), "one copy of the chart: helm/atft"
