"""Helpers of the image tests: scripts/image/lock.py as a module, and a parser for the locks it writes."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})$")


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("atft_image_lock", ROOT / "scripts" / "image" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


LOCK = _lock_module()


def parse(text: str) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, sha256 hashes) of a pip requirements file in uv's layout (``\\`` continuations)."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    for logical in re.sub(r"\\\n", " ", text).splitlines():
        if not logical.strip() or logical.lstrip().startswith("#"):
            continue
        spec, *options = logical.split()
        name, sep, version = spec.partition("==")
        assert sep, f"'{spec}' is not NAME==VERSION"
        hashes = [m[1] for opt in options if (m := HASH.match(opt))]
        assert len(hashes) == len(options), f"{spec}: options other than sha256 hashes: {options}"
        key = str(canonicalize_name(name))
        assert key not in entries, f"{key} locked twice"
        entries[key] = (Version(version), hashes)
    return entries
