"""Offline validation of Kubernetes objects against the CRD schemas in ``../shared/schemas/crds``.

Shared by the chart tests (PyTorchJob, monitoring objects) and the GitOps tests (Argo CD Application, Flux
GitRepository and Kustomization); core kinds go through ``kubernetes_validate`` instead, which knows no CRD.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from atft_cli.render import REPO_ROOT

CRD_DIR = REPO_ROOT.parent / "shared" / "schemas" / "crds"
CHART_GROUPS = ("kubeflow.org", "monitoring.coreos.com")  # the groups the chart renders
Validators = dict[tuple[str, str], jsonschema.Draft4Validator]


def to_jsonschema(node: Any, strict: bool = True) -> Any:
    """CRD openAPIV3Schema -> JSON Schema draft 4 (recipe of ../shared/schemas/README.md).

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
    for path in sorted(crd_dir.glob("*.yaml")):
        if not any(path.name.startswith(f"{group}_") for group in groups) and not _holds(path, groups):
            continue
        crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)  # 0.6 MB: the C parser
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
    """Files not named ``<group>_<plural>.yaml`` (``application-crd.yaml``): look at the group line only."""
    with path.open() as fh:
        head = fh.read(4096)
    return any(f"group: {group}\n" in head for group in groups)
