"""Helpers of the chart tests: scenario list, CRD schema conversion, and accessors for rendered objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from atft_cli.render import CHART_DIR, REPO_ROOT

CRD_DIR = REPO_ROOT.parent / "shared" / "schemas" / "crds"
SCENARIOS = sorted(p.name for p in (CHART_DIR / "ci").glob("*-values.yaml"))
PROD = REPO_ROOT / "configs" / "prod-20ep.yaml"
Objects = list[dict[str, Any]]


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


def load_crd_validators(crd_dir: Path) -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    """(apiVersion, kind) -> validator for every served version of the CRDs the chart renders."""
    validators = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        if not path.name.startswith(("kubeflow.org_", "monitoring.coreos.com_")):
            continue  # the chart renders only these groups; parsing the rest costs time
        crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)  # 0.6 MB: the C parser
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for ver in crd["spec"]["versions"]:
            if ver.get("served", True):
                schema = to_jsonschema(ver["schema"]["openAPIV3Schema"])
                validators[(f"{group}/{ver['name']}", kind)] = jsonschema.Draft4Validator(schema)
    return validators


def crd_errors(obj: dict[str, Any], validators: dict[tuple[str, str], jsonschema.Draft4Validator]) -> list[str]:
    validator = validators[(obj["apiVersion"], obj["kind"])]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


def one(objs: Objects, kind: str) -> dict[str, Any]:
    """The single object of ``kind``."""
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}: {[o['kind'] for o in objs]}"
    return found[0]


def config_map(objs: Objects) -> dict[str, Any]:
    """The ConfigMap with the run config (``<job name>-config``; the chart may render other ConfigMaps)."""
    job = one(objs, "PyTorchJob")["metadata"]["name"]
    found = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{job}-config"]
    assert len(found) == 1, f"expected one ConfigMap {job}-config"
    return found[0]


def pod_specs(objs: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    """(replica type, pod spec) of every replica of the PyTorchJob."""
    for rtype, spec in one(objs, "PyTorchJob")["spec"]["pytorchReplicaSpecs"].items():
        yield rtype, spec["template"]["spec"]


def containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container of a pod spec (init containers included) by name."""
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}
