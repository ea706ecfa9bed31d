"""Fixtures of the GitOps tests: each overlay built once by the real `kubectl kustomize`, the CRD validators.

These tests need kubectl, helm (``python3 scripts/fetch_helm.py``) and the CRD schemas in
``tests/data/schemas``; without them they fail and say so: they run in CI (``make test-integration``), never skip.
"""

from __future__ import annotations

import pytest
from gitops_helpers import K8S, OVERLAYS, Objects, kustomize
from k8s_schemas import CHART_GROUPS, CRD_DIR, Validators, load_crd_validators

GITOPS_GROUPS = (*CHART_GROUPS, "argoproj.io", "source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io")


@pytest.fixture(scope="session")
def built() -> dict[str, Objects]:
    """Overlay name -> its `kubectl kustomize` output (callers must not mutate)."""
    return {overlay: kustomize(K8S / "overlays" / overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def validators() -> Validators:
    if not CRD_DIR.is_dir():
        pytest.fail(f"{CRD_DIR}: missing; the GitOps tests validate CRD objects against tests/data/schemas/crds")
    return load_crd_validators(CRD_DIR, GITOPS_GROUPS)
