"""Offline validation of Kubernetes objects against the upstream CRD schemas in ``tests/data/schemas/crds``.

Shared by the chart tests (PyTorchJob, TrainJob, TrainingRuntime, monitoring objects), the GitOps tests (Argo CD
Application, Flux GitRepository and Kustomization) and the cluster tests (every PyTorchJob sent); core kinds go
through ``kubernetes_validate`` instead, which knows no CRD. The CRDs are stored gzipped, unedited (provenance and
sha256 in ``tests/data/schemas/SOURCES.md``), so a clone of the repository validates with nothing beside it.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).resolve().parent / "data" / "schemas"
CRD_DIR = SCHEMA_DIR / "crds"  # <file name of the upstream CRD>.gz
CHART_GROUPS = ("kubeflow.org", "trainer.kubeflow.org", "monitoring.coreos.com")  # the groups the chart renders
Validators = dict[tuple[str, str], jsonschema.Draft4Validator]


def to_jsonschema(node: Any, strict: bool = True) -> Any:
    """CRD openAPIV3Schema -> JSON Schema draft 4.

    ``x-kubernetes-*`` keys are dropped (CEL rules and list-map uniqueness are therefore not checked),
    ``x-kubernetes-int-or-string`` becomes ``anyOf: [integer, string]`` and ``nullable`` a ``[T, "null"]`` type.

    Strict adds ``additionalProperties: false`` to every object with ``properties`` (kubectl's strict field
    validation), so a misspelt field is an error instead of being pruned by the API server.
    """
    if isinstance(node, list):
        return [to_jsonschema(x, strict) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, val in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {k: to_jsonschema(v, strict) for k, v in val.items()}
        elif key in ("default", "example", "enum"):
            out[key] = val
        else:
            out[key] = to_jsonschema(val, strict)
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        strict
        and out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_crd_validators(crd_dir: Path, groups: Sequence[str] = CHART_GROUPS) -> Validators:
    """(apiVersion, kind) -> validator for every served version of the CRDs of ``groups`` (only those are parsed:
    the Argo CD CRD alone is 0.4 MB)."""
    validators = {}
    for path in sorted(crd_dir.glob("*.yaml.gz")):
        if not any(path.name.startswith(f"{group}_") for group in groups) and not _holds(path, groups):
            continue
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            crd = yaml.load(fh, Loader=yaml.CSafeLoader)  # up to 0.9 MB: the C parser
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        if group not in groups:
            continue
        for ver in crd["spec"]["versions"]:
            if ver.get("served", True):
                schema = to_jsonschema(ver["schema"]["openAPIV3Schema"])
                validators[(f"{group}/{ver['name']}", kind)] = jsonschema.Draft4Validator(schema)
    return validators


def crd_errors(obj: dict[str, Any], validators: Validators) -> list[str]:
    """``path: message`` per schema violation of ``obj``; KeyError for an apiVersion/kind without a CRD here."""
    validator = validators[(obj["apiVersion"], obj["kind"])]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


def _holds(path: Path, groups: Sequence[str]) -> bool:
    """Files not named ``<group>_<plural>.yaml.gz`` (``application-crd.yaml.gz``): look at the group line only."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        head = fh.read(4096)
    return any(f"group: {group}\n" in head for group in groups)
