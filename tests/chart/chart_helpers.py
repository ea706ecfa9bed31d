"""Helpers of the chart tests: scenario list and accessors for rendered objects (CRD schemas: tests/k8s_schemas.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from atft_cli.render import CHART_DIR, REPO_ROOT

SCENARIOS = sorted(p.name for p in (CHART_DIR / "ci").glob("*-values.yaml"))
PROD = REPO_ROOT / "configs" / "prod-20ep.yaml"
Objects = list[dict[str, Any]]


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
