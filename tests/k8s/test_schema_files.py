"""The CRD schemas stored in tests/data/schemas are the upstream files SOURCES.md names, and each one loads.

The chart, GitOps and cluster tests are only as good as these files: one edited by hand or cut short would have
them check objects against a schema that no cluster serves. SOURCES.md pins each file by the sha256 of the
upstream file; these tests hold the stored copies to it.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import yaml
from k8s_schemas import CRD_DIR, SCHEMA_DIR, crd_errors, load_crd_validators

EXAMPLES = SCHEMA_DIR / "examples"
ALL_GROUPS = (
    "kubeflow.org",
    "monitoring.coreos.com",
    "argoproj.io",
    "kustomize.toolkit.fluxcd.io",
    "source.toolkit.fluxcd.io",
    "trainer.kubeflow.org",
)


def listed_sha256() -> dict[str, str]:
    """``crds/NAME.yaml`` -> sha256 of the upstream file, from the checksum block of SOURCES.md."""
    text = (SCHEMA_DIR / "SOURCES.md").read_text()
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, flags=re.MULTILINE)}


def upstream_bytes(path: Path) -> bytes:
    """The upstream file's bytes: CRDs are stored gzipped, the example as it is."""
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def test_every_stored_schema_is_the_upstream_file_sources_md_names() -> None:
    listed = listed_sha256()
    stored = {
        p.relative_to(SCHEMA_DIR).as_posix().removesuffix(".gz"): p for p in [*CRD_DIR.iterdir(), *EXAMPLES.iterdir()]
    }
    assert len(listed) == 11
    assert set(stored) == set(listed), "SOURCES.md and tests/data/schemas list different files"
    for name, path in stored.items():
        assert hashlib.sha256(upstream_bytes(path)).hexdigest() == listed[name], f"{path}: not the upstream file"


def test_every_stored_crd_loads_into_strict_validators() -> None:
    validators = load_crd_validators(CRD_DIR, ALL_GROUPS)
    assert set(validators) == {
        ("kubeflow.org/v1", "PyTorchJob"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("argoproj.io/v1alpha1", "Application"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
        ("source.toolkit.fluxcd.io/v1", "GitRepository"),
        ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
        ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"),
        ("trainer.kubeflow.org/v1alpha1", "ClusterTrainingRuntime"),
    }
    job = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "atft", "namespace": "ml"},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2, "image": "atft:0.1.0"}},
    }
    assert crd_errors(job, validators) == []
    job["spec"]["runtimeRef"]["nmae"] = "typo"
    job["spec"]["trainer"]["numNodes"] = "two"
    assert crd_errors(job, validators) == [
        "spec/runtimeRef: Additional properties are not allowed ('nmae' was unexpected)",
        "spec/trainer/numNodes: 'two' is not of type 'integer'",
    ]


def test_the_upstream_torch_runtime_is_valid_against_the_stored_trainer_crd() -> None:
    """The example is a Helm template: its ``{{ }}`` lines (extra labels only) are dropped before validating."""
    template = (EXAMPLES / "trainer-runtime-torch-distributed.yaml").read_text()
    runtime = yaml.safe_load("\n".join(line for line in template.splitlines() if "{{" not in line))
    assert runtime["kind"] == "ClusterTrainingRuntime" and runtime["spec"]["mlPolicy"]["torch"] == {}
    assert crd_errors(runtime, load_crd_validators(CRD_DIR, ("trainer.kubeflow.org",))) == []
