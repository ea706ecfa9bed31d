"""status / logs / wait / list / delete with ``--target trainjob``, as a user runs them (a subprocess) against the
fake API server serving Kubeflow Trainer v2 TrainJobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import (
    CORE,
    NS,
    TRAINER,
    atft,
    companions,
    node_pod,
    trainer_condition,
    training_runtime,
    trainjob,
    trainjob_status,
)
from fake_api import FakeApiServer

TARGET = ("--target", "trainjob")
RUNNING = trainjob_status(active=1)
SUCCEEDED = trainjob_status(
    trainer_condition("Complete", reason="AllJobsCompleted", message="jobset completed"), succeeded=1
)
FAILED = trainjob_status(trainer_condition("Failed", reason="FailedJobs", message="NCCL timeout"), failed=1)


@pytest.fixture
def running(api: FakeApiServer) -> FakeApiServer:
    """TrainJob `demo` Running on two nodes, node 1 restarted once, each node's `node` container with a log."""
    api.put(TRAINER, "trainjobs", trainjob(nodes=2) | {"status": RUNNING})
    for index in range(2):
        pod = node_pod("demo", index, restarts=index)
        api.put(CORE, "pods", pod)
        api.logs[(NS, pod["metadata"]["name"])] = f"rank {index} epoch 1\nrank {index} epoch 2\n"
    api.put(CORE, "pods", node_pod("other", 0))  # another TrainJob's pod must never show up
    return api


def _states(stderr: str) -> list[str]:
    return [line.split(": ")[1].split(" ")[0] for line in stderr.splitlines() if line.startswith(f"{NS}/demo: ")]


def test_status_json_reads_the_trainjob_its_replicated_jobs_and_node_pods(
    running: FakeApiServer, kubeconfig: Path
) -> None:
    result = atft("status", "demo", *TARGET, "-o", "json", "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["name"], record["namespace"], record["state"], record["restarts"]) == ("demo", NS, "Running", 1)
    assert record["replicas"] == {"node": {"active": 1, "succeeded": 0, "failed": 0}}
    assert [(p["pod"], p["replica"], p["index"], p["node"]) for p in record["pods"]] == [
        ("demo-node-0-0-x0q7z", "node", "0", "gpu-node-0"), ("demo-node-0-1-x1q7z", "node", "1", "gpu-node-1")
    ]  # fmt: skip
    assert [(r.method, r.path, r.query) for r in running.requests] == [
        ("GET", f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs/demo", {}),
        ("GET", f"/api/v1/namespaces/{NS}/pods", {"labelSelector": "jobset.sigs.k8s.io/jobset-name=demo"}),
    ]


def test_status_table_is_titled_with_the_trainjob_and_hints_carry_the_target(
    running: FakeApiServer, kubeconfig: Path
) -> None:
    result = atft("status", "demo", *TARGET, "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    assert f"TrainJob {NS}/demo" in result.stdout and "node 1 active/0 ok/0 failed" in result.stdout
    assert f"`atft logs demo -f --target trainjob -n {NS}` or `atft wait demo --target trainjob -n {NS}`" in (
        result.stderr
    )


def test_a_missing_trainjob_is_exit_2_naming_it_and_the_next_command(api: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("status", "nope", *TARGET, "-n", "team-a", "--kubeconfig", kubeconfig)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: TrainJob team-a/nope not found; `atft list --target trainjob -n team-a` shows the jobs there"
    ]


@pytest.mark.parametrize(
    ("final", "code", "said"),
    [(SUCCEEDED, 0, f"{NS}/demo: Succeeded\n"),
     (FAILED, 1, f"error: TrainJob {NS}/demo failed (FailedJobs: NCCL timeout); "
                 f"`atft logs demo --target trainjob -n {NS}` shows why")],
)  # fmt: skip
def test_wait_follows_created_running_and_exits_with_the_outcome(
    api: FakeApiServer, kubeconfig: Path, final: dict[str, Any], code: int, said: str
) -> None:
    api.put(TRAINER, "trainjobs", trainjob())  # just created: no status yet
    api.on_watch(TRAINER, "trainjobs", NS, "demo", [RUNNING, final])
    result = atft("wait", "demo", *TARGET, "--timeout", "30s", "--kubeconfig", kubeconfig)
    assert result.returncode == code, result.stderr
    assert _states(result.stderr) == ["Created", "Running", "Succeeded" if code == 0 else "Failed"]
    assert f"{NS}/demo: Running (node 1/0/0 active/ok/failed)" in result.stderr
    assert said in (result.stdout if code == 0 else result.stderr)
    watch = api.calls("GET", "trainjobs")[1]
    assert (watch.query["watch"], watch.query["fieldSelector"]) == ("True", "metadata.name=demo")


def test_wait_timeout_is_exit_3(running: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("wait", "demo", *TARGET, "--timeout", "1s", "--kubeconfig", kubeconfig)
    assert result.returncode == 3, result.stderr
    assert (
        f"error: TrainJob {NS}/demo is still Running after 1s; `atft status demo --target trainjob -n {NS}`"
        in result.stderr
    )


def test_logs_go_across_both_node_pods_and_follow_them_or_one_by_its_rank(
    running: FakeApiServer, kubeconfig: Path
) -> None:
    both = atft("logs", "demo", *TARGET, "--kubeconfig", kubeconfig)
    assert both.returncode == 0, both.stderr
    assert both.stdout.splitlines() == [
        "[demo-node-0-0-x0q7z] rank 0 epoch 1", "[demo-node-0-0-x0q7z] rank 0 epoch 2",
        "[demo-node-0-1-x1q7z] rank 1 epoch 1", "[demo-node-0-1-x1q7z] rank 1 epoch 2",
    ]  # fmt: skip
    (pods,) = [r for r in running.requests if r.path.endswith("/pods")]
    assert pods.query == {
        "labelSelector": "jobset.sigs.k8s.io/jobset-name=demo,jobset.sigs.k8s.io/replicatedjob-name=node"
    }
    assert [(r.path, r.query) for r in running.calls("GET", "log")] == [
        (f"/api/v1/namespaces/{NS}/pods/demo-node-0-0-x0q7z/log", {"container": "node", "follow": "False"}),
        (f"/api/v1/namespaces/{NS}/pods/demo-node-0-1-x1q7z/log", {"container": "node", "follow": "False"}),
    ]

    followed = atft("logs", "demo", *TARGET, "-f", "--kubeconfig", kubeconfig)  # both streams, as lines arrive
    assert followed.returncode == 0, followed.stderr
    node0 = [line for line in followed.stdout.splitlines() if line.startswith("[demo-node-0-0-x0q7z] ")]
    node1 = [line for line in followed.stdout.splitlines() if line.startswith("[demo-node-0-1-x1q7z] ")]
    assert [node0, node1] == [both.stdout.splitlines()[:2], both.stdout.splitlines()[2:]]  # each in its order
    assert len(followed.stdout.splitlines()) == 4
    follows = [r for r in running.calls("GET", "log") if r.query["follow"] == "True"]
    assert sorted(r.path.rsplit("/", 2)[1] for r in follows) == ["demo-node-0-0-x0q7z", "demo-node-0-1-x1q7z"]

    one = atft("logs", "demo", *TARGET, "-f", "--index", "1", "--kubeconfig", kubeconfig)
    assert one.returncode == 0, one.stderr
    assert one.stdout == "rank 1 epoch 1\nrank 1 epoch 2\n"
    assert running.requests[-2].query["labelSelector"].endswith(",batch.kubernetes.io/job-completion-index=1")
    assert running.requests[-1].query == {"container": "node", "follow": "True"}


def test_logs_refuse_a_replica_the_trainjob_does_not_have(running: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("logs", "demo", *TARGET, "--replica", "master", "--kubeconfig", kubeconfig)
    assert result.returncode == 2
    assert "'master': a TrainJob has replicas node" in result.stderr
    assert running.calls("GET", "log") == []


def test_list_and_delete(running: FakeApiServer, kubeconfig: Path) -> None:
    running.put(TRAINER, "trainjobs", trainjob("older", nodes=1) | {"status": FAILED})
    running.put(CORE, "configmaps", companions()[1])
    running.put(TRAINER, "trainingruntimes", training_runtime())
    listed = atft("list", *TARGET, "-o", "json", "--kubeconfig", kubeconfig)
    assert listed.returncode == 0, listed.stderr
    assert [(j["name"], j["state"], j["replicas"]) for j in json.loads(listed.stdout)] == [
        ("demo", "Running", "node x2"), ("older", "Failed", "node x1")
    ]  # fmt: skip
    deleted = atft("delete", "demo", *TARGET, "-o", "json", "--kubeconfig", kubeconfig)
    assert deleted.returncode == 0, deleted.stderr
    assert [(o["kind"], o["name"]) for o in json.loads(deleted.stdout)] == [
        ("TrainJob", "demo"), ("ConfigMap", "demo-config"), ("TrainingRuntime", "demo")
    ]  # fmt: skip
    assert running.get(TRAINER, "trainjobs", NS, "demo") is None
    assert running.get(TRAINER, "trainjobs", NS, "older") is not None


def test_the_default_target_never_asks_for_trainjobs(running: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("list", "-o", "json", "--kubeconfig", kubeconfig)
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert [r.path for r in running.requests] == [f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs"]
