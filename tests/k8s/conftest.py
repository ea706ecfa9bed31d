"""Fixtures for the cluster verbs: a fake API server per test, a kubeconfig for it, the PyTorchJob CRD schema.

The clients under test are the real ``kubernetes`` and ``kubeflow-training`` packages, talking HTTP to
:mod:`fake_api` on 127.0.0.1. The CLI runs as a user runs it (a subprocess of ``python -m atft_cli``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from fake_api import FakeApiServer

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT.parent / "shared" / "schemas" / "crds" / "kubeflow.org_pytorchjobs.yaml"
NS = "ml"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)


def _to_jsonschema(node: Any) -> Any:
    """CRD openAPIV3Schema -> strict JSON Schema draft 4 (the recipe in ../shared/schemas/README.md)."""
    if isinstance(node, list):
        return [_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: ({p: _to_jsonschema(s) for p, s in v.items()} if k == "properties" else v if k in ("default", "enum")
            else _to_jsonschema(v))
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k != "nullable"
    }  # fmt: skip
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    open_object = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in out
    if out.get("type") == "object" and "properties" in out and not open_object:
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="session")
def job_schema_errors() -> Callable[[dict[str, Any]], list[str]]:
    """``errors(obj)``: every violation of the operator's PyTorchJob CRD (strict: unknown fields too)."""
    if not CRD.is_file():
        pytest.fail(f"{CRD}: missing; these tests validate every PyTorchJob sent against the operator's CRD")
    crd = yaml.load(CRD.read_text(), Loader=yaml.CSafeLoader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    validator = jsonschema.Draft4Validator(_to_jsonschema(version["schema"]["openAPIV3Schema"]))

    def errors(obj: dict[str, Any]) -> list[str]:
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]

    return errors
