"""``atft render`` as a user runs it: a real process, the real helm, exit codes and stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_helpers import PROD, SCENARIOS, config_map
from processes import Env, run_cli

from atft_cli import render as render_mod
from atft_cli.render import CHART_DIR, REPO_ROOT, ToolMissingError, find_helm

pytestmark = pytest.mark.integration


def atft(*args: str, env: Env | None = None) -> subprocess.CompletedProcess[str]:
    """``atft render ARGS`` run from the repository root."""
    return run_cli("render", *args, env=env, cwd=REPO_ROOT, timeout=120)


def test_render_is_byte_identical_across_runs_and_json_matches_yaml() -> None:
    args = ("--config", str(PROD), "-f", str(CHART_DIR / "ci" / SCENARIOS[0]), "--name", "prod-a", "-n", "team")
    first, second = atft(*args), atft(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    docs = [d for d in yaml.safe_load_all(first.stdout) if d]
    assert {d["metadata"]["namespace"] for d in docs} == {"team"}
    assert {d["metadata"]["name"] for d in docs} >= {"prod-a", "prod-a-config"}
    assert first.stdout.count("\n---\n") == len(docs) - 1 and first.stdout.startswith("---\n")
    as_json = atft(*args, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    listed = json.loads(as_json.stdout)
    assert listed["kind"] == "List" and listed["items"] == docs
    cm = config_map(docs)
    assert cm["data"]["config.yaml"] == PROD.read_text(), "the ConfigMap must be the config file byte for byte"
    assert "config.yaml: |" in first.stdout, "the config stays readable as a YAML block"


def test_defaults_demo_config_and_name() -> None:
    done = atft()
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    job = next(d for d in docs if d["kind"] == "PyTorchJob")
    assert job["metadata"] == {**job["metadata"], "name": "atft-demo", "namespace": "default"}
    cm = config_map(docs)
    assert cm["data"]["config.yaml"] == (REPO_ROOT / "configs" / "demo.yaml").read_text()


def test_values_typo_exits_2_naming_the_key(tmp_path: Path) -> None:
    values = tmp_path / "mine.yaml"
    values.write_text("exporter:\n  pushgatway: http://pgw:9091\n")
    done = atft("-f", str(values))
    assert done.returncode == 2 and done.stdout == ""
    assert "exporter: additional properties 'pushgatway' not allowed" in done.stderr
    assert str(values) in done.stderr and "Traceback" not in done.stderr


def test_bad_config_fails_the_render_with_the_config_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  epochs: -3\n")
    done = atft("--config", str(config))
    assert done.returncode == 2 and done.stdout == ""
    assert "train.epochs" in done.stderr and "Traceback" not in done.stderr


def test_bad_name_and_missing_files_exit_2(tmp_path: Path) -> None:
    bad = atft("--name", "Prod_Run")
    assert bad.returncode == 2 and "--name 'Prod_Run': must be a DNS-1035 label" in bad.stderr
    missing = atft("-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and f"{tmp_path / 'nope.yaml'}: no such file" in missing.stderr
    fmt = atft("-o", "xml")
    assert fmt.returncode == 2 and "xml" in fmt.stderr


def test_unusable_atft_helm_names_the_variable_and_the_fetch_script(tmp_path: Path) -> None:
    done = atft(env={"ATFT_HELM": str(tmp_path / "helm")})
    assert done.returncode == 2 and done.stdout == ""
    assert f"ATFT_HELM={tmp_path / 'helm'}: not an executable file" in done.stderr
    assert "scripts/fetch_helm.py" in done.stderr and "Traceback" not in done.stderr


def test_find_helm_order_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_helm()
    monkeypatch.delenv("ATFT_HELM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no helm on PATH
    monkeypatch.setattr(render_mod, "LOCAL_HELM", tmp_path / ".tools" / "bin" / "helm")
    with pytest.raises(ToolMissingError, match=r"set ATFT_HELM=.*scripts/fetch_helm\.py"):
        find_helm()
    (tmp_path / "helm").symlink_to(real)
    assert find_helm() == tmp_path / "helm", "PATH comes before .tools/bin"
    monkeypatch.setenv("ATFT_HELM", str(real))
    assert find_helm() == real, "ATFT_HELM comes first"
    old = tmp_path / "old-helm"
    old.write_text('#!/bin/sh\necho "v3.12.3+g3a31588"\n')
    old.chmod(0o755)
    monkeypatch.setenv("ATFT_HELM", str(old))
    with pytest.raises(ToolMissingError, match=r"too old; need 3\.14\+"):
        find_helm()
