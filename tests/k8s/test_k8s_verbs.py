"""status / logs / wait / delete / list as a user runs them (a subprocess) against the fake API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster_fixtures import CORE, JOBS, NS, atft, companions, job_status, pod, pytorchjob
from fake_api import FakeApiServer

RUNNING = job_status("Created", "Running", active=1)


@pytest.fixture
def running(api: FakeApiServer) -> FakeApiServer:
    """Job `demo` Running with a master (restarted twice) and two workers, each with a log."""
    api.put(JOBS, "pytorchjobs", pytorchjob(workers=2) | {"status": RUNNING})
    api.put(CORE, "pods", pod("demo", "master", 0, restarts=2))
    for i in range(2):
        api.put(CORE, "pods", pod("demo", "worker", i))
        api.logs[(NS, f"demo-worker-{i}")] = f"worker {i} step 1\nworker {i} step 2\n"
    api.logs[(NS, "demo-master-0")] = "epoch 1 val_rank_ic_5d=0.031\nepoch 2 val_rank_ic_5d=0.044\n"
    api.put(CORE, "pods", pod("other", "master", 0))  # another job's pod must never show up
    return api


def test_status_json_has_conditions_replicas_pods_restarts_and_age(running: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("status", "demo", "-o", "json", "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["name"], record["namespace"], record["state"], record["restarts"]) == ("demo", NS, "Running", 2)
    assert [c["type"] for c in record["conditions"]] == ["Created", "Running"]
    assert record["replicas"] == {"Master": {"active": 1, "succeeded": 0, "failed": 0}}
    assert [(p["pod"], p["replica"], p["restarts"]) for p in record["pods"]] == [
        ("demo-master-0", "master", 2), ("demo-worker-0", "worker", 0), ("demo-worker-1", "worker", 0)
    ]  # fmt: skip
    assert record["age"].endswith("s")  # created moments ago
    pods_call = running.calls("GET", "pods")[0]
    assert pods_call.path == f"/api/v1/namespaces/{NS}/pods"
    assert pods_call.query["labelSelector"] == "training.kubeflow.org/job-name=demo"


def test_status_table_and_the_next_commands_on_stderr(running: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("status", "demo", "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    assert "Running" in result.stdout and "demo-worker-1" in result.stdout and "gpu-node-0" in result.stdout
    assert f"atft logs demo -f -n {NS}" in result.stderr and "hint" not in result.stdout


def test_a_missing_job_is_one_line_exit_2_naming_namespace_name(api: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("status", "nope", "-n", "team-a", "--kubeconfig", kubeconfig)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: PyTorchJob team-a/nope not found; `atft list -n team-a` shows the jobs there"
    ]
    assert api.requests[0].path == "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/nope"


@pytest.mark.parametrize(
    ("final", "code", "said"),
    [
        (job_status("Created", "Running", "Succeeded", succeeded=1), 0, "Succeeded"),
        (job_status("Created", "Running", "Failed", failed=1, message="NCCL timeout"), 1,
         "failed (PyTorchJobFailed: NCCL timeout)"),
    ],
)  # fmt: skip
def test_wait_exit_code_follows_the_job(
    api: FakeApiServer, kubeconfig: Path, final: dict[str, object], code: int, said: str
) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob() | {"status": job_status("Created")})
    api.on_watch(JOBS, "pytorchjobs", NS, "demo", [RUNNING, final])
    result = atft("wait", "demo", "--timeout", "30s", "--kubeconfig", kubeconfig)
    assert result.returncode == code, result.stderr
    states = [
        line.split(": ")[1].split(" ")[0] for line in result.stderr.splitlines() if line.startswith(f"{NS}/demo: ")
    ]
    assert states == ["Created", "Running", final["conditions"][-1]["type"]]  # type: ignore[index]
    assert said in (result.stdout + result.stderr)


def test_wait_timeout_is_exit_3(running: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("wait", "demo", "--timeout", "1s", "--kubeconfig", kubeconfig)
    assert result.returncode == 3, result.stderr
    assert f"error: PyTorchJob {NS}/demo is still Running after 1s; `atft status demo -n {NS}`" in result.stderr


def test_wait_rejects_a_bad_duration_before_any_call(api: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("wait", "demo", "--timeout", "2 hours", "--kubeconfig", kubeconfig)
    assert result.returncode == 2 and "'2 hours': expected a duration such as 90s" in result.stderr
    assert api.requests == []


def test_logs_of_the_master_by_default(running: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("logs", "demo", "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "epoch 1 val_rank_ic_5d=0.031\nepoch 2 val_rank_ic_5d=0.044\n"
    (call,) = running.calls("GET", "log")
    assert call.path == f"/api/v1/namespaces/{NS}/pods/demo-master-0/log"
    assert call.query == {"container": "pytorch", "follow": "False"}  # the client's spelling of a bool
    (pods,) = [r for r in running.requests if r.path.endswith("/pods")]
    assert pods.query["labelSelector"] == (
        "training.kubeflow.org/job-name=demo,training.kubeflow.org/replica-type=master"
    )


def test_logs_of_all_workers_are_prefixed_and_followed_together(running: FakeApiServer, kubeconfig: Path) -> None:
    both = atft("logs", "demo", "--replica", "worker", "--kubeconfig", kubeconfig)
    assert both.returncode == 0, both.stderr
    assert both.stdout.splitlines()[0] == "[demo-worker-0] worker 0 step 1"
    assert both.stdout.splitlines()[-1] == "[demo-worker-1] worker 1 step 2"
    followed = atft("logs", "demo", "-f", "--replica", "worker", "--kubeconfig", kubeconfig)
    assert followed.returncode == 0, followed.stderr
    assert sorted(followed.stdout.splitlines()) == sorted(both.stdout.splitlines())
    assert {r.query["follow"] for r in running.calls("GET", "log")[-2:]} == {"True"}
    one = atft("logs", "demo", "-f", "--replica", "worker", "--index", "1", "--kubeconfig", kubeconfig)
    assert one.returncode == 0 and one.stdout == "worker 1 step 1\nworker 1 step 2\n"
    assert running.calls("GET", "log")[-1].query == {"container": "pytorch", "follow": "True"}


def test_logs_of_a_job_without_pods_says_so(api: FakeApiServer, kubeconfig: Path) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob() | {"status": job_status("Created")})
    result = atft("logs", "demo", "--kubeconfig", kubeconfig)
    assert result.returncode == 2
    assert f"PyTorchJob {NS}/demo has no master pod yet" in result.stderr and "Traceback" not in result.stderr


def test_list_and_delete(running: FakeApiServer, kubeconfig: Path) -> None:
    running.put(JOBS, "pytorchjobs", pytorchjob("older", workers=0) | {"status": job_status("Created", "Failed")})
    for obj in companions():
        if obj["kind"] == "ConfigMap":
            running.put(CORE, "configmaps", obj)
    listed = atft("list", "-o", "json", "--kubeconfig", kubeconfig)
    assert listed.returncode == 0, listed.stderr
    assert [(j["name"], j["state"], j["replicas"]) for j in json.loads(listed.stdout)] == [
        ("demo", "Running", "Master x1, Worker x2"), ("older", "Failed", "Master x1")
    ]  # fmt: skip
    deleted = atft("delete", "demo", "--kubeconfig", kubeconfig)
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted PyTorchJob {NS}/demo" in deleted.stderr and f"deleted ConfigMap {NS}/demo-config" in deleted.stderr
    assert running.get(JOBS, "pytorchjobs", NS, "demo") is None
    again = atft("delete", "demo", "--kubeconfig", kubeconfig)
    assert again.returncode == 2
    assert f"PyTorchJob {NS}/demo not found, nor objects labelled app.kubernetes.io/instance=demo" in again.stderr


def test_kubeconfig_and_context_mistakes_are_exit_2(kubeconfig: Path, tmp_path: Path) -> None:
    missing = atft("list", "--kubeconfig", tmp_path / "nope")
    assert missing.returncode == 2
    assert f"kubeconfig {tmp_path / 'nope'}: no such file; pass --kubeconfig FILE or set KUBECONFIG" in missing.stderr
    context = atft("list", "--context", "prod", "--kubeconfig", kubeconfig)
    assert context.returncode == 2 and "context 'prod' not found; allowed: fake" in context.stderr


def test_forbidden_is_exit_2_with_the_rbac_hint(api: FakeApiServer, kubeconfig: Path) -> None:
    api.forbidden.add(("list", "pytorchjobs"))
    result = atft("list", "--kubeconfig", kubeconfig)
    assert result.returncode == 2
    assert f'cannot list PyTorchJobs in namespace {NS}: pytorchjobs.kubeflow.org "" is forbidden' in result.stderr
    assert f"kubectl auth can-i list pytorchjobs -n {NS}" in result.stderr
