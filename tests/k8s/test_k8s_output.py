"""``-o json|yaml|table`` of submit, wait and delete: what they did, as data on stdout, progress on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cluster_fixtures import CORE, JOBS, NS, atft, companions, job_status, pod, pytorchjob
from fake_api import FakeApiServer

SUCCEEDED = job_status("Created", "Running", "Succeeded", succeeded=1)


@pytest.mark.integration  # renders with the real helm
def test_submit_prints_the_created_objects(api: FakeApiServer, kubeconfig: Path) -> None:
    done = atft("submit", "--name", "demo", "--set", "networkPolicy.enabled=true", "-o", "json",
                "--kubeconfig", kubeconfig)  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent = [(r.body["kind"], r.body["metadata"]["namespace"], r.body["metadata"]["name"]) for r in api.calls("POST")]
    assert [(o["kind"], o["namespace"], o["name"]) for o in json.loads(done.stdout)] == sent
    assert sent[-1] == ("PyTorchJob", NS, "demo") and len(sent) >= 3
    assert f"created PyTorchJob {NS}/demo" in done.stderr  # progress stays on stderr

    before = len(api.requests)
    dry = atft("submit", "--name", "other", "--set", "networkPolicy.enabled=true", "--dry-run", "-o", "yaml",
               "--kubeconfig", kubeconfig)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    planned = [(o["kind"], o["namespace"], o["name"]) for o in yaml.safe_load(dry.stdout)]
    assert planned == [(k, ns, n.replace("demo", "other")) for k, ns, n in sent]
    assert len(api.requests) == before, "a dry run makes no API call"


def test_wait_prints_the_final_status_record(api: FakeApiServer, kubeconfig: Path) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob(workers=0) | {"status": job_status("Created")})
    api.put(CORE, "pods", pod("demo", "master", 0, phase="Succeeded", restarts=1))
    api.on_watch(JOBS, "pytorchjobs", NS, "demo", [job_status("Created", "Running", active=1), SUCCEEDED])
    done = atft("wait", "demo", "--timeout", "30s", "-o", "json", "--kubeconfig", kubeconfig)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["name"], record["namespace"], record["state"], record["restarts"]) == ("demo", NS, "Succeeded", 1)
    assert record["replicas"] == {"Master": {"active": 0, "succeeded": 1, "failed": 0}}
    assert [(p["pod"], p["phase"]) for p in record["pods"]] == [("demo-master-0", "Succeeded")]
    assert f"{NS}/demo: Running" in done.stderr


def test_wait_table_is_one_row(api: FakeApiServer, kubeconfig: Path) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob(workers=0) | {"status": SUCCEEDED})
    done = atft("wait", "demo", "-o", "table", "--kubeconfig", kubeconfig)
    assert done.returncode == 0, done.stderr
    assert "Succeeded" in done.stdout and "Master 0 active/1 ok/0 failed" in done.stdout


def test_a_failed_job_prints_no_record(api: FakeApiServer, kubeconfig: Path) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob() | {"status": job_status("Created", "Failed", failed=1)})
    done = atft("wait", "demo", "-o", "json", "--kubeconfig", kubeconfig)
    assert done.returncode == 1 and done.stdout == ""
    assert f"error: PyTorchJob {NS}/demo failed" in done.stderr


def test_delete_prints_the_deleted_objects(api: FakeApiServer, kubeconfig: Path) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob())
    for obj in companions():
        plural = {"ServiceAccount": "serviceaccounts", "ConfigMap": "configmaps"}.get(obj["kind"])
        if plural:
            api.put(CORE, plural, obj)
    done = atft("delete", "demo", "-o", "yaml", "--kubeconfig", kubeconfig)
    assert done.returncode == 0, done.stderr
    deleted = [(o["kind"], o["namespace"], o["name"]) for o in yaml.safe_load(done.stdout)]
    assert deleted == [("PyTorchJob", NS, "demo"), ("ConfigMap", NS, "demo-config"), ("ServiceAccount", NS, "demo")]
    assert len(api.calls("DELETE")) == 3
    assert "PersistentVolumeClaims are kept" in done.stderr
