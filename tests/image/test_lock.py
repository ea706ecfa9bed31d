"""The image locks (requirements/image-*.lock): fresh against pyproject's pins, a hash on every line, one per route.

Why: the image installs a lock with ``pip install --require-hashes``, so a pin changed in pyproject without
re-running scripts/image/lock.py would ship the old version or fail only at image build time, minutes in, and a
lock without its Python version could be built on the wrong base. The static checks run in the fast suite; the
two marked ``integration`` need the wheel folder (offline) or PyPI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from lock_helpers import LOCK, ROOT, parse
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

FIX = "run: python3 scripts/image/lock.py"
ROUTES = sorted(LOCK.ROUTES)
# The python3 each base distribution ships: Ubuntu 24.04 (the CUDA base) and Debian 12 bookworm (scripts/image/base.sh).
DISTRO_PYTHON = {"ubuntu24.04": "3.12", "bookworm": "3.11"}


def _pyproject_deps() -> list[Requirement]:
    return [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]


@pytest.mark.parametrize("route", ROUTES)
def test_every_locked_line_carries_a_sha256_hash(route: str) -> None:
    text = (ROOT / LOCK.ROUTES[route].lock).read_text()
    entries = parse(text)
    assert len(entries) > 50, f"{route}: only {len(entries)} entries"
    unhashed = sorted(name for name, (_, hashes) in entries.items() if not hashes)
    assert unhashed == [], f"{LOCK.ROUTES[route].lock}: no hash for {unhashed}; {FIX}"
    names = [str(canonicalize_name(m[1])) for m in re.finditer(r"^([A-Za-z0-9._-]+)==", text, flags=re.MULTILINE)]
    assert names == sorted(names), f"{route}: names out of order; {FIX}"


@pytest.mark.parametrize("route", ROUTES)
def test_every_pyproject_pin_is_locked_at_the_same_version(route: str) -> None:
    entries = parse((ROOT / LOCK.ROUTES[route].lock).read_text())
    for req in _pyproject_deps():
        name = str(canonicalize_name(req.name))
        assert name in entries, f"{LOCK.ROUTES[route].lock}: {name} (pyproject {req}) is not locked; {FIX}"
        version = entries[name][0]
        assert req.specifier.contains(version, prereleases=True), f"{name}=={version} outside pyproject's {req}; {FIX}"
        if name != "torch":  # pyproject gives torch a range; the route decides which build (CUDA or CPU)
            (spec,) = req.specifier
            assert spec.operator == "==", f"pyproject: {req} is not pinned with =="
    torch = entries["torch"][0]
    assert f"torch=={torch}" == LOCK.ROUTES[route].torch, f"{route}: torch {torch}, lock.py says {LOCK.ROUTES[route]}"


@pytest.mark.parametrize("route", ROUTES)
def test_lock_names_its_python_and_the_route_builds_on_that_python(route: str) -> None:
    """The Dockerfile refuses a base whose python3 is not the lock's `# python-version`; here the lock's version
    must be the python3 of the base that route really builds on (a lock for 3.11 with the 3.12 base never builds)."""
    r = LOCK.ROUTES[route]
    text = (ROOT / r.lock).read_text()
    assert LOCK.read_field(text, "python-version") == r.python
    assert LOCK.read_field(text, "python-platform") == r.platform
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", LOCK.read_field(text, "exclude-newer") or ""), FIX
    dockerfile = (ROOT / "Dockerfile").read_text()
    build_sh = (ROOT / "scripts" / "image" / "build.sh").read_text()
    if route == "cuda":  # the Dockerfile's defaults
        assert re.search(rf"^ARG LOCK={re.escape(r.lock)}$", dockerfile, flags=re.MULTILINE)
        base = re.search(r"^ARG BASE_TAG=(\S+)$", dockerfile, flags=re.MULTILINE)
    else:  # scripts/image/build.sh's arguments and base
        assert re.search(rf"^LOCK={re.escape(r.lock)}$", build_sh, flags=re.MULTILINE)
        base = re.search(r"^SUITE=(\S+)$", (ROOT / "scripts" / "image" / "base.sh").read_text(), flags=re.MULTILINE)
    assert base is not None
    (distro,) = [d for d in DISTRO_PYTHON if d in base[1]]
    assert DISTRO_PYTHON[distro] == r.python, f"{route}: base {base[1]} runs {DISTRO_PYTHON[distro]}, lock {r.python}"


def test_dockerfile_installs_only_the_lock_with_hashes_and_wheels() -> None:
    """Every `pip install` the Dockerfile runs is either the lock (hashes, wheels only) or the project offline."""
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    installs = [line for line in lines if "pip install" in line and not line.lstrip().startswith("#")]
    locked = [i for i in installs if "--require-hashes --only-binary=:all:" in i and "-r requirements/image.lock" in i]
    offline = [i for i in installs if "--no-deps" in i and "--no-index" in i and "--require-hashes" not in i]
    assert len(locked) == 1 and len(offline) == 1 and len(installs) == 2, installs
    assert "!requirements/image-*.lock" in (ROOT / ".dockerignore").read_text().splitlines()


def test_cuda_requirement_matches_the_locked_cuda_runtime() -> None:
    """NVIDIA_REQUIRE_CUDA (the driver the node must have) follows the CUDA runtime the locked torch brings."""
    entries = parse((ROOT / LOCK.ROUTES["cuda"].lock).read_text())
    runtime = entries["nvidia-cuda-runtime"][0]
    arg = re.search(r'^ARG NVIDIA_REQUIRE_CUDA="cuda>=(\d+\.\d+)"$', (ROOT / "Dockerfile").read_text(), re.M)
    assert arg is not None and arg[1] == f"{runtime.major}.{runtime.minor}", (arg and arg[1], str(runtime))
    assert "nvidia-cuda-runtime" not in parse((ROOT / LOCK.ROUTES["cpu"].lock).read_text())


def _pip_verify(requirement: str, tmp_path: Path, wheels: Path) -> subprocess.CompletedProcess[str]:
    """What the Dockerfile's install does with one lock line, offline against the wheel folder (no install)."""
    tmp_path.mkdir()
    req = tmp_path / "one.lock"
    req.write_text(requirement + "\n")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--require-hashes", "--only-binary=:all:",
           "--no-index", "--find-links", str(wheels), "--target", str(tmp_path / "target"), "-r", str(req)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.integration
def test_a_tampered_hash_fails_the_install_the_true_one_passes(tmp_path: Path) -> None:
    """The check a build with an edited lock line fails on: pip with --require-hashes compares the wheel's sha256
    (here the CPU torch wheel the cpu lock pins) with the lock's; one changed hex digit is refused."""
    wheels = Path(os.environ.get("ATFT_WHEELS_DIR", "/opt/wheels"))
    r = LOCK.ROUTES["cpu"]
    version, (digest,) = parse((ROOT / r.lock).read_text())["torch"]
    if not list(wheels.glob(f"torch-{version}-*.whl")):
        pytest.fail(f"{wheels}: no torch-{version} wheel (the image build needs it too; set ATFT_WHEELS_DIR)")
    good = _pip_verify(f"torch=={version} --hash=sha256:{digest}", tmp_path / "good", wheels)
    assert good.returncode == 0, good.stderr[-2000:]
    tampered = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    bad = _pip_verify(f"torch=={version} --hash=sha256:{tampered}", tmp_path / "bad", wheels)
    assert bad.returncode != 0
    assert "DO NOT MATCH THE HASHES" in bad.stderr and f"Expected sha256 {tampered}" in bad.stderr, bad.stderr[-2000:]


@pytest.mark.integration
def test_lock_check_resolves_the_committed_locks_again() -> None:
    """scripts/image/lock.py --check (uv against PyPI as of each lock's exclude-newer) reproduces both locks."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "image" / "lock.py"), "--check"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
