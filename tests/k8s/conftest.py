"""Fixtures for the cluster verbs: a fake API server per test, a kubeconfig for it, the job CRD schemas.

The clients under test are the real ``kubernetes`` and ``kubeflow-training`` packages, talking HTTP to
:mod:`fake_api` on 127.0.0.1. The CLI runs as a user runs it (a subprocess of ``python -m atft_cli``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_api import FakeApiServer
from k8s_schemas import CRD_DIR, crd_errors, load_crd_validators

CRDS = (CRD_DIR / "kubeflow.org_pytorchjobs.yaml.gz", CRD_DIR / "trainer.kubeflow.org_trainjobs.yaml.gz")
NS = "ml"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)


@pytest.fixture(scope="session")
def job_schema_errors() -> Callable[[dict[str, Any]], list[str]]:
    """``errors(obj)``: every violation of the job's CRD (strict: unknown fields too), by apiVersion and kind:
    the training operator's PyTorchJob, the Trainer's TrainJob and TrainingRuntime."""
    for crd in CRDS:
        if not crd.is_file():
            pytest.fail(f"{crd}: missing; these tests validate every job sent against the operator's CRD")
    validators = load_crd_validators(CRD_DIR, ("kubeflow.org", "trainer.kubeflow.org"))

    def errors(obj: dict[str, Any]) -> list[str]:
        return crd_errors(obj, validators)

    return errors
