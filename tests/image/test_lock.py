"""requirements/image.lock agrees with pyproject's pins (fast; no podman).

Why: the image installs the lock with --no-deps, so a pin changed in pyproject without re-running
scripts/image/lock.py would ship the old version (or fail `pip check` only at image build time, minutes in).
This catches it in the fast suite, naming the package and the command that fixes it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
FIX = "run: python3 scripts/image/lock.py"


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements" / "image.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements/image.lock: '{line}' is not NAME==VERSION"
            pins[str(canonicalize_name(name))] = version
    return pins


def test_every_pyproject_pin_is_locked_at_the_same_version() -> None:
    lock = _lock()
    deps = [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    for req in deps:
        name = canonicalize_name(req.name)
        if name == "torch":  # from TORCH_INDEX_URL, constrained by the lock's own torch dependencies
            assert "torch" not in lock
            continue
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"pyproject: {req} is not pinned with =="
        assert lock.get(name) == specs[0].version, f"image.lock has {name}=={lock.get(name)}, pyproject {req}; {FIX}"


def test_lock_names_each_package_once_and_sorted() -> None:
    names = [
        canonicalize_name(line.partition("==")[0])
        for line in (ROOT / "requirements" / "image.lock").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert names == sorted(set(names)), f"duplicated or unsorted names; {FIX}"
