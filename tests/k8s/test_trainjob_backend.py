"""The TrainJob backend (Kubeflow Trainer v2) against the fake API server: the exact requests sent for create, get,
list, watch, pods and delete, the state each status maps to, and API answers turned into errors that name the
TrainJob and the next command with ``--target trainjob``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import (
    CORE,
    NS,
    TRAINER,
    companions,
    node_pod,
    trainer_condition,
    training_runtime,
    trainjob,
    trainjob_status,
)
from fake_api import DEFAULT_RESOURCES, FakeApiServer

from atft_cli.backends import TrainJobBackend
from atft_cli.commands.status import describe
from atft_cli.k8s import (
    ClusterInputError,
    ClusterUnavailable,
    Forbidden,
    JobFailed,
    JobNotFound,
    NameClash,
    WaitTimeout,
)

JOBS_PATH = f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs"
CREATED = trainjob_status()  # the TrainJob exists, no condition written yet
RUNNING = trainjob_status(active=1)
SUCCEEDED = trainjob_status(trainer_condition("Complete", reason="AllJobsCompleted", message="jobset completed"),
                            succeeded=1)  # fmt: skip
FAILED = trainjob_status(trainer_condition("Failed", reason="FailedJobs", message="jobset failed due to failing job"),
                         failed=1)  # fmt: skip


@pytest.fixture
def backend(kubeconfig: Path) -> TrainJobBackend:
    return TrainJobBackend(kubeconfig=str(kubeconfig))


def _plural(obj: dict[str, Any]) -> tuple[str, str]:
    """(prefix, plural) of a companion, for putting it into the fake API."""
    prefix = "api/v1" if obj["apiVersion"] == "v1" else f"apis/{obj['apiVersion']}"
    return prefix, {"NetworkPolicy": "networkpolicies"}.get(obj["kind"], obj["kind"].lower() + "s")


def test_create_sends_the_companions_then_the_trainjob_verbatim(
    api: FakeApiServer, backend: TrainJobBackend, job_schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    objs = [*companions(), training_runtime(), trainjob(nodes=2)]
    seen: list[str] = []
    assert backend.create(objs, seen.append) == "demo"
    assert [(r.method, r.path, r.query) for r in api.requests] == [
        ("GET", f"{JOBS_PATH}/demo", {}),  # the name-clash pre-flight
        ("POST", f"/api/v1/namespaces/{NS}/serviceaccounts", {}),
        ("POST", f"/api/v1/namespaces/{NS}/configmaps", {}),
        ("POST", f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies", {}),
        ("POST", f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/prometheusrules", {}),
        ("POST", f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainingruntimes", {}),
        ("POST", JOBS_PATH, {}),
    ]
    posts = api.calls("POST")
    assert [r.body for r in posts] == objs  # every object as rendered: quantities stay numbers, no field dropped
    assert job_schema_errors(posts[-1].body) == [] and job_schema_errors(posts[-2].body) == []
    assert seen[-2:] == [f"created TrainingRuntime {NS}/demo", f"created TrainJob {NS}/demo"]


PATCHED_NODE = "spec.runtimePatches.0.trainingRuntimeSpec.template.spec.replicatedJobs.0.template.spec.template.spec"


def _set(obj: Any, dotted: str, value: Any) -> None:
    """``obj[a][b]...[z] = value`` for ``dotted`` ``a.b....z`` (a number indexes a list)."""
    *parents, last = dotted.split(".")
    for key in parents:
        obj = obj[int(key)] if key.isdigit() else obj[key]
    obj[last] = value


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("spec.trainer.resourcesPerNod", {}, r"would not send spec\.trainer\.resourcesPerNod"),  # a typo
        ("spec.podTemplateOverrides", [], r"would not send spec\.podTemplateOverrides"),  # not in the v2.3 API
        (f"{PATCHED_NODE}.containers.0.volumeMountz", [], r"would not send spec\.runtimePatches\[0\]\..*"
                                                          r"\.containers\[0\]\.volumeMountz"),
        ("spec.trainer.numProcPerNode", "auto", r"rejects TrainerV1alpha1Trainer \(numProcPerNode: .*integer"),
    ],
)  # fmt: skip
def test_a_field_the_trainer_model_would_drop_or_reject_is_refused_before_any_create(
    api: FakeApiServer, backend: TrainJobBackend, field: str, value: Any, said: str
) -> None:
    job = trainjob()
    _set(job, field, value)
    with pytest.raises(ClusterInputError, match=rf"^TrainJob {NS}/demo: the kubeflow-trainer-api .*{said}"):
        backend.create([*companions(), job], lambda _: None)
    assert api.requests[-1].method == "GET" and api.calls("POST") == []  # refused after the pre-flight, before any POST


def test_a_trainjob_of_that_name_fails_before_anything_is_created(api: FakeApiServer, backend: TrainJobBackend) -> None:
    api.put(TRAINER, "trainjobs", trainjob())
    with pytest.raises(
        NameClash, match=rf"TrainJob {NS}/demo already exists; `atft delete demo --target trainjob -n {NS}`"
    ):
        backend.create([*companions(), trainjob()], lambda _: None)
    assert api.calls("POST") == []


def test_a_cluster_without_the_trainer_is_told_to_use_the_other_target(kubeconfig: Path) -> None:
    served = {k: v for k, v in DEFAULT_RESOURCES.items() if "trainer" not in k}
    with FakeApiServer(served) as bare:
        backend = TrainJobBackend(kubeconfig=str(bare.kubeconfig(kubeconfig.parent / "bare", namespace=NS)))
        with pytest.raises(ClusterInputError) as err:
            backend.create([companions()[1], trainjob()], lambda _: None)
    message = str(err.value)
    assert message.startswith(f"cannot create TrainJob {NS}/demo: the server could not find the requested resource")
    assert "(`kubectl api-resources | grep -i trainjobs`), or submit with --target pytorchjob?" in message
    assert f"already created: ConfigMap {NS}/demo-config; `atft delete demo --target trainjob -n {NS}`" in message


def test_forbidden_names_the_trainjob_and_the_rbac_check(api: FakeApiServer, backend: TrainJobBackend) -> None:
    api.forbidden.add(("create", "trainjobs"))
    with pytest.raises(Forbidden, match=rf"cannot create TrainJob {NS}/demo: .*`kubectl auth can-i create trainjobs"):
        backend.create([trainjob()], lambda _: None)


def test_get_and_list_by_label_selector(api: FakeApiServer, backend: TrainJobBackend) -> None:
    fold = trainjob("v1-f00-s0")
    fold["metadata"]["labels"]["atft.dev/validation-id"] = "v1"
    api.put(TRAINER, "trainjobs", fold)
    api.put(TRAINER, "trainjobs", trainjob("other"))
    assert backend.get("other")["spec"] == trainjob("other")["spec"]
    assert [j["metadata"]["name"] for j in backend.list_jobs("atft.dev/validation-id=v1")] == ["v1-f00-s0"]
    assert [j["metadata"]["name"] for j in backend.list_jobs()] == ["other", "v1-f00-s0"]
    assert [(r.method, r.path, r.query) for r in api.requests] == [
        ("GET", f"{JOBS_PATH}/other", {}),
        ("GET", JOBS_PATH, {"labelSelector": "atft.dev/validation-id=v1"}),
        ("GET", JOBS_PATH, {}),
    ]


def test_get_of_a_missing_trainjob_names_the_next_command_with_the_target(backend: TrainJobBackend) -> None:
    with pytest.raises(JobNotFound, match=rf"TrainJob {NS}/nope not found; `atft list --target trainjob -n {NS}`"):
        backend.get("nope")


def test_an_unreachable_server_is_exit_4_naming_the_trainjob(tmp_path: Path) -> None:
    with FakeApiServer() as gone:
        path = gone.kubeconfig(tmp_path / "kc")
    with pytest.raises(ClusterUnavailable, match=r"cannot get TrainJob default/demo: no answer from") as err:
        TrainJobBackend(kubeconfig=str(path)).get("demo")
    assert err.value.exit_code == 4


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (None, "Created"),  # just created: no status written yet
        (trainjob_status(trainer_condition("Created", reason="JobsCreationSucceeded")), "Created"),  # Trainer < 2.1
        (RUNNING, "Running"),
        (trainjob_status(ready=1), "Running"),
        (SUCCEEDED, "Succeeded"),
        (FAILED, "Failed"),
        (trainjob_status(trainer_condition("Suspended", reason="Suspended", message="TrainJob is suspended")),
         "Suspended"),
        (trainjob_status(trainer_condition("Suspended", "False", reason="Resumed")), "Pending"),  # no pod active yet
    ],
)  # fmt: skip
def test_each_trainer_status_maps_to_the_shared_state_vocabulary(
    api: FakeApiServer,
    backend: TrainJobBackend,
    status: dict[str, Any] | None,
    state: str,
    job_schema_errors: Callable[[dict[str, Any]], list[str]],
) -> None:
    job = trainjob() | ({"status": status} if status else {})
    assert job_schema_errors(job) == []  # a status the Trainer can write
    api.put(TRAINER, "trainjobs", job)
    record = describe(backend, backend.get("demo"), [])
    assert record["state"] == state
    counts = (status or {}).get("jobsStatus", [{}])[0]
    assert record["replicas"] == ({"node": {k: counts[k] for k in ("active", "succeeded", "failed")}} if status else {})


def test_pods_are_selected_by_jobset_replicated_job_and_completion_index(
    api: FakeApiServer, backend: TrainJobBackend
) -> None:
    for index in range(2):
        api.put(CORE, "pods", node_pod("demo", index))
    api.put(CORE, "pods", node_pod("other", 1))
    assert [p["metadata"]["name"] for p in backend.pods("demo", "node", 1)] == ["demo-node-0-1-x1q7z"]
    assert [backend.pod_replica(p) for p in backend.pods("demo")] == [("node", "0"), ("node", "1")]
    assert [r.query["labelSelector"] for r in api.calls("GET", "pods")] == [
        "jobset.sigs.k8s.io/jobset-name=demo,jobset.sigs.k8s.io/replicatedjob-name=node,"
        "batch.kubernetes.io/job-completion-index=1",
        "jobset.sigs.k8s.io/jobset-name=demo",
    ]


@pytest.mark.parametrize(("final", "error"), [(SUCCEEDED, None), (FAILED, JobFailed)])
def test_wait_follows_created_running_to_the_end(
    api: FakeApiServer, backend: TrainJobBackend, final: dict[str, Any], error: type[Exception] | None
) -> None:
    api.put(TRAINER, "trainjobs", trainjob())
    api.on_watch(TRAINER, "trainjobs", NS, "demo", [RUNNING, final])
    seen: list[str] = []
    call = lambda: backend.wait("demo", 20, lambda job: seen.append(backend.state(job)))  # noqa: E731
    if error is None:
        assert call()["status"] == final
    else:
        with pytest.raises(error, match=rf"^TrainJob {NS}/demo failed \(FailedJobs: jobset failed due to failing job\)"
                                        rf"; `atft logs demo --target trainjob -n {NS}` shows why$"):  # fmt: skip
            call()
    assert seen == ["Created", "Running", "Succeeded" if error is None else "Failed"]
    get, watch = api.calls("GET", "trainjobs")
    assert (get.path, get.query) == (f"{JOBS_PATH}/demo", {})
    assert watch.path == JOBS_PATH
    assert {k: watch.query[k] for k in ("watch", "fieldSelector", "resourceVersion")} == {
        "watch": "True", "fieldSelector": "metadata.name=demo", "resourceVersion": "1"
    }  # fmt: skip


def test_wait_resyncs_after_a_watch_expired_by_compaction(api: FakeApiServer, backend: TrainJobBackend) -> None:
    api.put(TRAINER, "trainjobs", trainjob() | {"status": RUNNING})
    api.expire_watches = 1
    api.on_watch(TRAINER, "trainjobs", NS, "demo", [SUCCEEDED])
    seen: list[str] = []
    backend.wait("demo", 20, lambda job: seen.append(backend.state(job)))
    assert seen == ["Running", "Succeeded"]
    gets = [(r.path.rsplit("/", 1)[1], r.query.get("resourceVersion")) for r in api.calls("GET", "trainjobs")]
    assert gets == [("demo", None), ("trainjobs", "1"), ("demo", None), ("trainjobs", "1")]


def test_wait_fails_when_the_trainjob_is_deleted(api: FakeApiServer, backend: TrainJobBackend) -> None:
    api.put(TRAINER, "trainjobs", trainjob() | {"status": RUNNING})

    def delete_it(job: dict[str, Any]) -> None:  # as `kubectl delete` would, between the get and the watch
        api.remove(TRAINER, "trainjobs", NS, "demo")

    with pytest.raises(JobFailed, match=rf"^TrainJob {NS}/demo was deleted while waiting for it$") as err:
        backend.wait("demo", 20, delete_it)
    assert err.value.exit_code == 1


def test_wait_times_out_while_the_trainjob_runs(api: FakeApiServer, backend: TrainJobBackend) -> None:
    api.put(TRAINER, "trainjobs", trainjob() | {"status": RUNNING})
    with pytest.raises(WaitTimeout, match=rf"TrainJob {NS}/demo is still Running after 1s; "
                                          rf"`atft status demo --target trainjob -n {NS}`") as err:  # fmt: skip
        backend.wait("demo", 1, lambda _: None)
    assert err.value.exit_code == 3


def test_delete_removes_the_trainjob_its_runtime_and_companions(api: FakeApiServer, backend: TrainJobBackend) -> None:
    for obj in companions():
        api.put(*_plural(obj), obj)
    api.put(TRAINER, "trainingruntimes", training_runtime())
    api.put(TRAINER, "trainingruntimes", training_runtime("other"))
    api.put(TRAINER, "trainjobs", trainjob())
    deleted: list[str] = []
    assert backend.delete("demo", deleted.append)[0] == ("TrainJob", "demo")
    assert [(r.path, r.body) for r in api.calls("DELETE")] == [
        (f"{JOBS_PATH}/demo", None),
        (f"/api/v1/namespaces/{NS}/configmaps/demo-config", None),
        (f"/api/v1/namespaces/{NS}/serviceaccounts/demo", None),
        (f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/demo", None),
        (f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/prometheusrules/demo", None),
        (f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainingruntimes/demo", None),
    ]
    assert deleted[0] == f"deleted TrainJob {NS}/demo" and deleted[-1] == f"deleted TrainingRuntime {NS}/demo"
    assert api.get(TRAINER, "trainingruntimes", NS, "other") is not None
    lists = [r for r in api.calls("GET") if r.path.split("/")[-1] != "demo"]
    assert {r.query.get("labelSelector") for r in lists} == {"app.kubernetes.io/instance=demo"}
    assert lists[-1].path == f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainingruntimes"


def test_delete_skips_a_kind_the_cluster_does_not_serve_and_names_the_target_when_nothing_is_there(
    kubeconfig: Path,
) -> None:
    served = {k: ({"trainjobs"} if "trainer" in k else v) for k, v in DEFAULT_RESOURCES.items()}  # no TrainingRuntime
    with FakeApiServer(served) as partial:
        path = partial.kubeconfig(kubeconfig.parent / "partial", namespace=NS)
        partial.put(TRAINER, "trainjobs", trainjob())
        backend = TrainJobBackend(kubeconfig=str(path))
        assert backend.delete("demo", lambda _: None) == [("TrainJob", "demo")]
        with pytest.raises(JobNotFound) as err:
            backend.delete("demo", lambda _: None)
    assert str(err.value) == (
        f"TrainJob {NS}/demo not found, nor objects labelled app.kubernetes.io/instance=demo; "
        f"`atft list --target trainjob -n {NS}`"
    )
