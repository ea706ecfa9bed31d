"""k8s/rendered/ is what `atft render` prints today, and a change without re-rendering fails with the diff.

Also the naming that makes commit-driven retraining safe: `--name-hash` gives every distinct render its own
names (a merged change is a new PyTorchJob beside the old one, never a patch of a running one), and the same
inputs the same names (a re-sync changes nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gitops_helpers import K8S, OVERLAYS, RENDER_SCRIPT, atft, render_commands

from atft_cli.render import REPO_ROOT

pytestmark = pytest.mark.integration


def committed(overlay: str) -> Path:
    return K8S / "rendered" / overlay / "manifests.yaml"


def names(text: str) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(text) if o}


def replaced(args: list[str], option: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(option) + 1] = value
    return out


def test_committed_renders_are_up_to_date() -> None:
    """What CI runs (`scripts/gitops_render.sh --check`): every overlay's committed render is current."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATFT": f"{sys.executable} -m atft_cli"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT / "cli")])
    done = subprocess.run([str(RENDER_SCRIPT), "--check"], capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert [line.split(":")[1] for line in done.stderr.splitlines()] == [
        f" k8s/rendered/{o}/manifests.yaml" for o in OVERLAYS
    ]
    assert set(render_commands()) == set(OVERLAYS), "every overlay has its render in scripts/gitops_render.sh"


def test_changed_values_without_rerender_fail_with_the_diff(tmp_path: Path) -> None:
    args = render_commands()["dev"]
    values = yaml.safe_load((REPO_ROOT / args[args.index("--values") + 1]).read_text())
    values["shmSize"] = "3Gi"
    changed = tmp_path / "values.yaml"
    changed.write_text(yaml.safe_dump(values))
    done = atft(*replaced(args, "--values", str(changed)), "--check", str(committed("dev")))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"--- {committed('dev')} (committed)" and lines[1] == "+++ atft render"
    assert "+              sizeLimit: 3Gi" in lines, "the diff shows the changed value"
    assert any(line.startswith("-  name: atft-dev-") for line in lines), "and the job's new name"
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "differs from a fresh render" in error and "Traceback" not in done.stderr


def test_changed_config_without_rerender_fails(tmp_path: Path) -> None:
    args = render_commands()["prod"]
    config = tmp_path / "prod.yaml"
    config.write_text((REPO_ROOT / args[args.index("--config") + 1]).read_text().replace("epochs: 20", "epochs: 21"))
    assert config.read_text() != (REPO_ROOT / args[args.index("--config") + 1]).read_text(), "the edit took"
    done = atft(*replaced(args, "--config", str(config)), "--check", str(committed("prod")))
    assert done.returncode == 1, done.stderr
    assert "+      epochs: 21" in done.stdout.splitlines(), "the diff shows the changed config line"


def test_a_merged_change_is_a_new_job_and_the_same_inputs_the_same_names(tmp_path: Path) -> None:
    args = render_commands()["dev"]
    again = atft(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout == committed("dev").read_text(), "same inputs: byte-identical, so a re-sync is a no-op"
    values = yaml.safe_load((REPO_ROOT / args[args.index("--values") + 1]).read_text())
    values["runPolicy"]["backoffLimit"] += 1
    changed = tmp_path / "values.yaml"
    changed.write_text(yaml.safe_dump(values))
    new = atft(*replaced(args, "--values", str(changed)))
    assert new.returncode == 0, new.stderr
    old_names, new_names = names(again.stdout), names(new.stdout)
    assert {k for k, _ in old_names} == {k for k, _ in new_names}
    assert not old_names & new_names, "no object of the new run may replace one of the running job"
    (job,) = [n for k, n in new_names if k == "PyTorchJob"]
    assert job.startswith("atft-dev-") and len(job) == len("atft-dev-") + 8
    assert all(n.startswith(job) for _, n in new_names), "every object of the run carries the run's name"


def test_check_and_name_hash_input_errors_exit_2(tmp_path: Path) -> None:
    args = render_commands()["dev"]
    missing = atft(*args, "--check", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2 and missing.stderr.startswith("error:"), missing.stderr
    assert "absent.yaml: no such file" in missing.stderr and "Traceback" not in missing.stderr
    long = atft(*replaced(args, "--name", "a" * 44))
    assert long.returncode == 2 and "at most 43 characters with --name-hash" in long.stderr, long.stderr
