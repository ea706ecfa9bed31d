"""Fixtures for the chart tests: the real helm binary, the real CRD schemas, rendering through ``render_manifests``.

These tests need ``helm`` (``python3 scripts/fetch_helm.py``) and the CRD schemas stored in ``tests/data/schemas``. When
either is missing they fail and say how to get it: they must run in CI, never skip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from chart_helpers import PROD, Objects
from k8s_schemas import CRD_DIR, load_crd_validators

from atft.errors import AtftError
from atft_cli.render import find_helm, render_manifests


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        return find_helm()
    except AtftError as exc:
        pytest.fail(f"{exc}\nthe chart tests need helm: run `python3 scripts/fetch_helm.py` (CI does)")


@functools.cache
def _render(config: Path, values: tuple[Path, ...], sets: tuple[str, ...], name: str, namespace: str) -> Objects:
    return render_manifests(config, list(values), list(sets), name, namespace)


@pytest.fixture(scope="session")
def render(helm: Path) -> Callable[..., Objects]:
    """``render(*sets, values=(), config=PROD, name="atft-test", namespace="ml")``; cached, callers must not mutate."""

    def call(
        *sets: str, values: tuple[Path, ...] = (), config: Path = PROD, name: str = "atft-test", namespace: str = "ml"
    ) -> Objects:
        return _render(config, tuple(values), tuple(sets), name, namespace)

    return call


@pytest.fixture(scope="session")
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    if not CRD_DIR.is_dir():
        pytest.fail(f"{CRD_DIR}: missing; the chart tests validate CRD objects against tests/data/schemas/crds")
    return load_crd_validators(CRD_DIR)
