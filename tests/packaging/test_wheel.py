"""The wheel works anywhere: built from the sources, installed into a fresh venv, run from a directory outside
the checkout -- version, completion, render, submit --dry-run and a debug training run.

Offline: the wheel is built without build isolation, and the fresh venv (created empty, ``--without-pip``) sees
the dependencies already installed in the test's own environment through a ``.pth`` line pointing at a copy of
its site-packages made of symlinks, minus this project's editable install. ``pip --python VENV install
--no-index`` then resolves the wheel's requirements against them: a requirement nothing satisfies (or a version
conflict) fails the install, as it would for a user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

import atft
from atft.errors import AtftError
from atft_cli.render import find_helm

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "src", "cli", "helm/atft", "configs")  # what a wheel build reads


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def version(line: str) -> str:
    name, _, number = line.strip().partition(" ")
    assert name == "atft", line
    return number


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the built wheel installed in it (dependencies visible from this environment)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for name in SOURCES:
        target = src / name
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", base / "dist", src,
        cwd=base)  # fmt: skip
    (wheel,) = (base / "dist").glob("atft-*.whl")
    deps = base / "deps"  # this environment's site-packages without the editable atft
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("atft", "__editable__")):
            (deps / entry.name).symlink_to(entry)
    env_dir = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", env_dir, cwd=base)  # empty: nothing shadows the deps
    (site,) = (env_dir / "lib").glob("python3.*/site-packages")
    (site / "_deps.pth").write_text(f"{deps}\n")
    run(sys.executable, "-m", "pip", "--python", env_dir / "bin" / "python", "install", "-q", "--no-index", wheel,
        cwd=base)  # fmt: skip
    return env_dir


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A working directory outside the checkout and an environment that knows nothing of the checkout."""
    try:
        helm = find_helm()
    except AtftError as exc:
        pytest.fail(f"{exc}\nrender needs helm: run `python3 scripts/fetch_helm.py` (CI does)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATFT_", "PYTHON", "VIRTUAL_ENV", "KUBECONFIG"))}
    env |= {"ATFT_HELM": str(helm), "KUBECONFIG": "/nonexistent/kubeconfig", "OMP_NUM_THREADS": "1"}
    return tmp_path_factory.mktemp("user"), env


def test_the_installed_package_is_the_wheel_not_the_checkout(venv: Path, user: tuple[Path, dict[str, str]]) -> None:
    cwd, env = user
    code = "import atft, atft_cli.render as r; print(atft.__file__); print(r.CHART_DIR); print(r.DEFAULT_CONFIG)"
    paths = [Path(line) for line in run(venv / "bin" / "python", "-c", code, cwd=cwd, env=env).splitlines()]
    assert all(venv in p.parents for p in paths), paths
    assert paths[1] == paths[0].parents[1] / "atft_cli" / "chart" and (paths[1] / "Chart.yaml").is_file()
    assert not (paths[1] / "ci").exists(), "the chart's test scenarios are not shipped"
    assert version(run(venv / "bin" / "atft", "--version", cwd=cwd, env=env)) == atft.__version__


def test_completion_script_names_the_command(venv: Path, user: tuple[Path, dict[str, str]]) -> None:
    cwd, env = user
    env = env | {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}  # take the shell from the argument
    script = run(venv / "bin" / "atft", "--show-completion", "bash", cwd=cwd, env=env)
    assert "_ATFT_COMPLETE=complete_bash" in script and script.rstrip().endswith(" atft")


def test_render_a_shipped_config_by_name(venv: Path, user: tuple[Path, dict[str, str]]) -> None:
    cwd, env = user
    docs = list(yaml.safe_load_all(run(venv / "bin" / "atft", "render", "--config", "prod-20ep", cwd=cwd, env=env)))
    (job,) = [d for d in docs if d and d["kind"] == "PyTorchJob"]
    assert job["metadata"]["name"] == "atft-prod-20ep"
    (cm,) = [d for d in docs if d and d["metadata"]["name"] == "atft-prod-20ep-config"]
    assert cm["data"]["config.yaml"] == (ROOT / "configs" / "prod-20ep.yaml").read_text()


def test_submit_dry_run(venv: Path, user: tuple[Path, dict[str, str]]) -> None:
    cwd, env = user
    done = subprocess.run(
        [venv / "bin" / "atft", "submit", "--config", "debug", "--name", "smoke-1", "-n", "research", "--dry-run",
         "--set", "gpusPerPod=0"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    objs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert {o["metadata"]["labels"]["app.kubernetes.io/managed-by"] for o in objs} == {"atft"}
    assert "would create PyTorchJob research/smoke-1" in done.stderr


def test_train_the_shipped_debug_config(venv: Path, user: tuple[Path, dict[str, str]]) -> None:
    cwd, env = user
    out = run(venv / "bin" / "atft", "train", "--config", "debug", "--out", "run", "--no-progress", "-o", "json",
              cwd=cwd, env=env)  # fmt: skip
    assert {row["objective"] for row in json.loads(out)} and (cwd / "run" / "report.md").is_file()
