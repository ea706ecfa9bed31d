"""Helpers of the GitOps tests: the overlays, `kubectl kustomize`, the real `atft` CLI as a process."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from processes import Env, run_cli

from atft_cli.render import REPO_ROOT

K8S = REPO_ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
RENDER_SCRIPT = REPO_ROOT / "scripts" / "gitops_render.sh"
Objects = list[dict[str, Any]]


def atft(*args: str, env: Env | None = None) -> subprocess.CompletedProcess[str]:
    """``atft ARGS`` as a user runs it, from the repository root."""
    return run_cli(*args, env=env, cwd=REPO_ROOT, timeout=180)


def kustomize(path: Path) -> Objects:
    """``kubectl kustomize PATH`` parsed; fails the test (never skips) without kubectl."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "the GitOps tests need kubectl (with its built-in kustomize) on PATH"
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"kubectl kustomize {path}: {proc.stderr}"
    return [o for o in yaml.safe_load_all(proc.stdout) if o]


def render_commands() -> dict[str, list[str]]:
    """Overlay -> the `atft render` arguments scripts/gitops_render.sh uses for k8s/rendered/<overlay>.

    Read from the script's OVERLAYS table, so the tests check the very commands CI and users run.
    """
    text = RENDER_SCRIPT.read_text()
    table = text[text.index("OVERLAYS=(") : text.index(")", text.index("OVERLAYS=("))]
    commands = {}
    for line in table.splitlines()[1:]:
        overlay, config = line.strip().strip('"').split()
        commands[overlay] = [
            "render", "--config", config, "--values", f"k8s/overlays/{overlay}/values.yaml",
            "--name", f"atft-{overlay}", "--name-hash", "--namespace", f"atft-{overlay}",
        ]  # fmt: skip
    return commands


def by_kind(objs: Objects, kind: str) -> Objects:
    return [o for o in objs if o["kind"] == kind]
