"""helm/atft/README.md is what scripts/chart_readme.py generates from values.yaml; the generator's rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "chart_readme.py"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_committed_readme_is_current() -> None:
    done = generate("--check")
    assert done.returncode == 0, f"{done.stderr}\n{done.stdout}\nrun `make chart-readme` and commit the README"


def chart_copy(tmp_path: Path) -> Path:
    chart = tmp_path / "atft"
    shutil.copytree(ROOT / "helm" / "atft", chart, ignore=shutil.ignore_patterns("templates", "files", "ci"))
    return chart


def test_a_changed_comment_changes_the_readme_and_the_check_says_so(tmp_path: Path) -> None:
    chart = chart_copy(tmp_path)
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("# -- Scrape interval.", "# -- How often <Prometheus> | scrapes."))
    stale = generate("--chart", str(chart), "--check")
    assert stale.returncode == 1 and "is not what scripts/chart_readme.py generates" in stale.stderr
    row = '+| `monitoring.serviceMonitor.interval` | string | `"30s"` | How often &lt;Prometheus&gt; \\| scrapes. |'
    assert row in stale.stdout.splitlines(), "the new comment, its markup escaped, is the row's description"
    assert generate("--chart", str(chart)).returncode == 0
    assert generate("--chart", str(chart), "--check").returncode == 0


def test_an_undocumented_key_fails_naming_it(tmp_path: Path) -> None:
    chart = chart_copy(tmp_path)
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("  # -- Image tag; empty = the chart's appVersion.\n", ""))
    done = generate("--chart", str(chart))
    assert done.returncode == 2
    assert done.stderr.strip() == "error: values.yaml: no `# --` comment on image.tag (nor on a map above)"
    assert (chart / "README.md").read_text() == (ROOT / "helm" / "atft" / "README.md").read_text(), "nothing written"
