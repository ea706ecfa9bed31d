"""The training image, built from the repository's Dockerfile and run for real with podman.

Why real: the image's contract (runs as UID 10001 on a read-only root filesystem with no writable /tmp, no
network and no capabilities, writes only to the run volume, carries exactly its hashed lock) is only shown
by building and running it. The build is the local CPU route of the same Dockerfile (scripts/image/build.sh:
debootstrap base, requirements/image-cpu.lock with the CPU torch wheel, host CA bundle as a build secret); the run uses
the flags of scripts/image/run.sh. Install the tools with scripts/image/install-tools.sh and
scripts/image/install-scanners.sh; a missing tool fails these tests, it never skips them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from lock_helpers import LOCK, parse
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = [pytest.mark.integration, pytest.mark.image]

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "image"
IMAGE = "localhost/atft:test"
SCAN_BIN = ROOT / ".tools" / "scan-venv" / "bin"
RUN_ARGS = ["--config", "configs/debug.yaml", "--out", "/runs/debug"]
CUDA_LOCK = LOCK.ROUTES["cuda"].lock

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
    for name in ("report.md", "report.json", "events.jsonl", "model.safetensors", "config.yaml"):
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
    # Exactly the lock the CPU route installs (scripts/image/build.sh), besides the project and the venv's pip.
    locked = {name: version for name, (version, _) in parse((ROOT / LOCK.ROUTES["cpu"].lock).read_text()).items()}
    assert {k: v for k, v in dists.items() if k not in {"atft", "pip"}} == locked


def test_the_scheduled_retrain_renders_the_chart_inside_the_locked_down_image(image: str, tmp_path: Path) -> None:
    """The GitOps CronJob runs `atft submit` from this image: the chart, helm and configs must be in it."""
    args = ["--entrypoint", "atft", "--", "render", "--config", "/opt/atft/configs/prod-20ep.yaml", "-o", "json"]
    out = _run(["bash", str(SCRIPTS / "run.sh"), str(tmp_path / "runs"), image, *args], timeout=120).stdout
    kinds = {obj["kind"] for obj in json.loads(out)["items"]}  # a v1 List, as `kubectl get -o json` prints
    assert "PyTorchJob" in kinds and "ConfigMap" in kinds


def _build_deps(context: Path, lock: str, network: str, wheels: Path) -> str:
    """Build the Dockerfile's deps stage as the CPU route does, with ``lock``; it must fail: returns its output."""
    ca = os.environ.get("ATFT_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    args = ["BASE_IMAGE=localhost/atft-base", "BASE_TAG=bookworm", "INSTALL_PYTHON=0", f"LOCK={lock}"]
    cmd = ["bash", str(SCRIPTS / "podman.sh"), "build", "--format", "docker", "--pull=never", f"--network={network}",
           "--layers", "--target", "deps", *[a for arg in args for a in ("--build-arg", arg)],
           "--build-context", f"wheels={wheels}", "--secret", f"id=ca,src={ca}",
           "-f", str(context / "Dockerfile"), str(context)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode != 0, f"the build of the deps stage with {lock} passed"
    return proc.stdout + proc.stderr


def test_a_lock_for_another_python_fails_the_build(image: str, tmp_path: Path) -> None:
    """The CUDA lock (CPython 3.12) on the CPU route's base (3.11): the deps stage stops, naming both versions,
    before pip runs (no network either, so nothing could be installed past the check)."""
    (tmp_path / "wheels").mkdir()
    output = _build_deps(ROOT, CUDA_LOCK, "none", tmp_path / "wheels")
    assert f"{CUDA_LOCK} is locked for CPython 3.12, but the base's python3 is 3.11" in output, output[-3000:]


def test_a_tampered_lock_line_fails_the_build(image: str, tmp_path: Path) -> None:
    """The CPU lock with the first entry's hashes changed by one digit: pip in the deps stage downloads that wheel
    from PyPI and refuses it (the same check refuses the local torch wheel: test_lock.py). A context of its own
    holds the Dockerfile and the edited lock, so the checkout is never touched."""
    cpu = LOCK.ROUTES["cpu"].lock
    text = (ROOT / cpu).read_text()
    first, (_, digests) = next(iter(parse(text).items()))
    tampered = text
    for digest in digests:
        tampered = tampered.replace(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1"))
    assert parse(tampered)[first][1] != digests and parse(tampered).keys() == parse(text).keys()
    (tmp_path / "requirements").mkdir()
    (tmp_path / cpu).write_text(tampered)
    shutil.copy2(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    output = _build_deps(tmp_path, cpu, "host", Path(os.environ.get("ATFT_WHEELS_DIR", "/opt/wheels")))
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in output and f"{first}==" in output, output[-3000:]


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
    # A CPU image asks the NVIDIA runtime for nothing (the CUDA image asks for the CUDA its torch was built for).
    assert "NVIDIA_REQUIRE_CUDA=" in config["Env"]


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
