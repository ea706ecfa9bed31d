"""The training image, built from the repository's Dockerfile and run for real with podman.

Why real: the image's contract (runs as UID 10001 on a read-only root filesystem with no writable /tmp, no
network and no capabilities, writes only to the run volume, carries exactly the project's pins) is only
shown by building and running it. The build is the local CPU route of the same Dockerfile
(scripts/image/build.sh: debootstrap base, CPU torch wheel, host CA bundle as a build secret); the run uses
the flags of scripts/image/run.sh. Install the tools with scripts/image/install-tools.sh and
scripts/image/install-scanners.sh; a missing tool fails these tests, it never skips them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = [pytest.mark.integration, pytest.mark.image]

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "image"
IMAGE = "localhost/atft:test"
SCAN_BIN = ROOT / ".tools" / "scan-venv" / "bin"
RUN_ARGS = ["--config", "configs/debug.yaml", "--out", "/runs/debug"]

# Runs inside the container (same locked-down flags as training): try to write everywhere but the volume,
# and list the installed distributions and any wheel or CA-secret file left in the image.
PROBE = r"""
import importlib.metadata as md, json, os
tries = {}
for d in ["/", "/tmp", "/var/tmp", "/opt/atft", "/opt/venv/lib", "/etc", "/root", "/runs"]:
    try:
        with open(os.path.join(d, "probe.txt"), "w") as fh:
            fh.write("x")
        tries[d] = "ok"
    except OSError as exc:
        tries[d] = f"{type(exc).__name__}: errno {exc.errno}"
leftovers = [os.path.join(r, f) for top in ["/opt", "/src", "/wheels", "/run"] for r, _, fs in os.walk(top)
             for f in fs if f.endswith(".whl") or r.startswith("/run/secrets")]
print(json.dumps({"writes": tries, "dists": {d.metadata["Name"]: d.version for d in md.distributions()},
                  "leftovers": leftovers}))
"""


def _require(tool: str, script: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: run scripts/image/{script} (CI does, see .ci/run)")


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def image() -> str:
    """Build the image once per session (podman's layer cache makes a rebuild of unchanged layers cheap)."""
    for tool in ("podman", "runc", "debootstrap"):
        _require(tool, "install-tools.sh")
    _run(["bash", str(SCRIPTS / "build.sh"), IMAGE], timeout=900)
    return IMAGE


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return _run(["bash", str(SCRIPTS / "podman.sh"), *args], timeout=timeout)


def _pins() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [Requirement(d) for d in deps]
    return {str(canonicalize_name(r.name)): r for r in reqs}


def test_training_run_writes_its_run_directory_on_the_volume(image: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = _run(["bash", str(SCRIPTS / "run.sh"), str(runs), image, "--", *RUN_ARGS], timeout=600)
    run_dir = runs / "debug"
    for name in ("report.md", "report.json", "events.jsonl", "metrics.jsonl", "model.safetensors", "config.yaml"):
        assert (run_dir / name).is_file(), f"{name} missing from {run_dir}; stdout: {proc.stdout[-2000:]}"
    report = json.loads((run_dir / "report.json").read_text())
    assert {o["name"] for o in report["objectives"]}, "report.json lists no objectives"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert (events[-1]["name"], events[-1]["message"]) == ("run_end", "status=ok"), events[-1]
    # Everything on the volume was written by the image's fixed user, nothing by root.
    owners = {p.stat().st_uid for p in runs.rglob("*")}
    assert owners == {10001}, owners
    # The caches the image points at the volume are where the run put them.
    assert any((runs / ".cache" / "atft").glob("synthetic-*.parquet"))
    assert (runs / ".cache" / "matplotlib").is_dir()


def test_writes_outside_the_volume_fail_and_pins_match(image: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cmd = ["bash", str(SCRIPTS / "run.sh"), str(runs), image, "--entrypoint", "python", "--", "-c", PROBE]
    out = _run(cmd, timeout=120).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    writes = probe["writes"]
    assert writes.pop("/runs") == "ok"
    refused = {d: r for d, r in writes.items() if r != "ok"}
    assert refused == writes, f"writable outside the volume: {sorted(set(writes) - set(refused))}"
    # /tmp is world-writable in the base: only the read-only root filesystem refuses it (EROFS, errno 30).
    assert writes["/tmp"].endswith("errno 30"), writes["/tmp"]
    assert probe["leftovers"] == [], "wheel or build secret left in the image"

    dists = {str(canonicalize_name(k)): Version(v) for k, v in probe["dists"].items()}
    for name, req in _pins().items():
        assert name in dists, f"{name} (pinned in pyproject) is not installed in the image"
        assert req.specifier.contains(dists[name]), f"{name}: image has {dists[name]}, pyproject says {req.specifier}"
        if "==" in str(req.specifier):
            assert str(dists[name]) == str(req.specifier)[2:], f"{name}: image {dists[name]} != pin {req}"
    assert dists["atft"] == Version(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_the_scheduled_retrain_renders_the_chart_inside_the_locked_down_image(image: str, tmp_path: Path) -> None:
    """The GitOps CronJob runs `atft submit` from this image: the chart, helm and configs must be in it."""
    args = ["--entrypoint", "atft", "--", "render", "--config", "/opt/atft/configs/prod-20ep.yaml", "-o", "json"]
    out = _run(["bash", str(SCRIPTS / "run.sh"), str(tmp_path / "runs"), image, *args], timeout=120).stdout
    kinds = {obj["kind"] for obj in json.loads(out)["items"]}  # a v1 List, as `kubectl get -o json` prints
    assert "PyTorchJob" in kinds and "ConfigMap" in kinds


def test_image_metadata(image: str) -> None:
    info = json.loads(_podman("image", "inspect", image).stdout)[0]
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python", "-m", "atft.train"]
    labels = config["Labels"]
    head = _run(["git", "rev-parse", "HEAD"], timeout=30).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == head
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert info["Healthcheck"]["Test"] == ["NONE"]


INSECURE = """FROM debian:latest
RUN apt-get update && apt-get install -y curl
ADD https://example.com/x.sh /x.sh
USER root
"""


def _scanner(name: str) -> str:
    exe = SCAN_BIN / name
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run scripts/image/install-scanners.sh (CI does, see .ci/run)")
    return str(exe)


def test_hadolint_passes_the_dockerfile_and_fails_an_insecure_one(tmp_path: Path) -> None:
    hadolint = _scanner("hadolint")
    _run([hadolint, "Dockerfile"], timeout=60)
    bad = tmp_path / "Dockerfile"
    bad.write_text(INSECURE)
    proc = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout  # the `latest` tag


def test_checkov_passes_the_dockerfile_and_fails_an_insecure_one(tmp_path: Path) -> None:
    checkov = _scanner("checkov")
    bad = tmp_path / "Dockerfile"
    bad.write_text(INSECURE)
    cmd = [checkov, "--skip-download", "--quiet", "-o", "json", "--framework", "dockerfile", "-f"]
    ours = json.loads(_run([*cmd, "Dockerfile"], timeout=180).stdout)
    assert ours["summary"]["failed"] == 0 and ours["summary"]["passed"] > 0, ours["summary"]
    proc = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    failed = {c["check_id"] for c in json.loads(proc.stdout)["results"]["failed_checks"]}
    assert {"CKV_DOCKER_7", "CKV_DOCKER_8"} <= failed, failed  # latest tag, last USER is root
