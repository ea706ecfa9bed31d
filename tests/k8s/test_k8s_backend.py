"""The PyTorchJob backend against the fake API server: the exact requests sent, and API answers turned into named
errors."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import CORE, JOBS, NS, companions, job_status, pytorchjob
from fake_api import FakeApiServer

from atft_cli.backends import PyTorchJobBackend
from atft_cli.k8s import ClusterUnavailable, Forbidden, JobFailed, JobNotFound, NameClash, WaitTimeout

CREATE_PATHS = [
    f"/api/v1/namespaces/{NS}/serviceaccounts",
    f"/api/v1/namespaces/{NS}/configmaps",
    f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies",
    f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/prometheusrules",
    f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs",
]


@pytest.fixture
def backend(kubeconfig: Path) -> PyTorchJobBackend:
    return PyTorchJobBackend(kubeconfig=str(kubeconfig))


def _quantities_as_strings(job: dict[str, Any]) -> dict[str, Any]:
    """What the SDK model sends: resource quantities are strings in its schema (8 -> "8"), nothing else changes."""
    out = copy.deepcopy(job)
    for spec in out["spec"]["pytorchReplicaSpecs"].values():
        for container in spec["template"]["spec"]["containers"]:
            limits = container["resources"]["limits"]
            container["resources"]["limits"] = {k: str(v) for k, v in limits.items()}
    return out


def test_create_sends_each_object_once_in_order_exactly_as_rendered(
    api: FakeApiServer, backend: PyTorchJobBackend, job_schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    objs = [*companions(), pytorchjob(workers=2)]
    assert backend.create(objs, lambda _: None) == "demo"
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs/demo"),  # the name-clash pre-flight
        *(("POST", path) for path in CREATE_PATHS),
    ]
    posts = api.calls("POST")
    assert [r.body for r in posts[:-1]] == companions()
    sent_job = posts[-1].body
    assert sent_job == _quantities_as_strings(pytorchjob(workers=2))
    assert job_schema_errors(sent_job) == []
    assert api.get(JOBS, "pytorchjobs", NS, "demo") is not None


def test_a_job_of_that_name_fails_before_anything_is_created(api: FakeApiServer, backend: PyTorchJobBackend) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob())
    with pytest.raises(NameClash, match=rf"PyTorchJob {NS}/demo already exists.*atft delete demo -n {NS}"):
        backend.create([*companions(), pytorchjob()], lambda _: None)
    assert api.calls("POST") == []


def test_a_clash_on_a_companion_names_it_and_what_was_created(api: FakeApiServer, backend: PyTorchJobBackend) -> None:
    api.put(CORE, "configmaps", companions()[1])
    with pytest.raises(NameClash) as err:
        backend.create([*companions(), pytorchjob()], lambda _: None)
    assert f"ConfigMap {NS}/demo-config already exists" in str(err.value)
    assert f"already created: ServiceAccount {NS}/demo" in str(err.value)
    assert api.get(JOBS, "pytorchjobs", NS, "demo") is None  # the job is never started without its config


def test_a_field_the_sdk_model_would_drop_is_refused_before_any_create(
    api: FakeApiServer, backend: PyTorchJobBackend
) -> None:
    job = pytorchjob()
    job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(Exception, match=r"would not send spec\.pytorchReplicaSpecs\.Master.*resourcez"):
        backend.create([job], lambda _: None)
    assert api.calls("POST") == []


def test_forbidden_names_the_object_and_the_rbac_check(api: FakeApiServer, backend: PyTorchJobBackend) -> None:
    api.forbidden.add(("create", "pytorchjobs"))
    with pytest.raises(Forbidden, match=rf"cannot create PyTorchJob {NS}/demo: .*kubectl auth can-i create"):
        backend.create([pytorchjob()], lambda _: None)


def test_get_of_a_missing_job_is_not_found_with_the_next_command(backend: PyTorchJobBackend) -> None:
    with pytest.raises(JobNotFound, match=rf"PyTorchJob {NS}/nope not found; `atft list -n {NS}`"):
        backend.get("nope")


def test_an_unreachable_server_is_exit_4_not_a_traceback(tmp_path: Path) -> None:
    with FakeApiServer() as gone:
        path = gone.kubeconfig(tmp_path / "kc")
    backend = PyTorchJobBackend(kubeconfig=str(path))  # the server is shut down: connection refused
    with pytest.raises(ClusterUnavailable, match=r"cannot get PyTorchJob default/demo: .*kubectl cluster-info") as err:
        backend.get("demo")
    assert err.value.exit_code == 4


@pytest.mark.parametrize(
    ("final", "error"),
    [(job_status("Created", "Running", "Succeeded", succeeded=1), None),
     (job_status("Created", "Running", "Failed", failed=1, message="loss is NaN"), JobFailed)],
)  # fmt: skip
def test_wait_streams_every_state_to_the_end(
    api: FakeApiServer, backend: PyTorchJobBackend, final: dict[str, Any], error: type[Exception] | None
) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob() | {"status": job_status("Created")})
    api.on_watch(JOBS, "pytorchjobs", NS, "demo", [job_status("Created", "Running", active=1), final])
    seen: list[str] = []
    call = lambda: backend.wait("demo", 20, lambda job: seen.append(job["status"]["conditions"][-1]["type"]))  # noqa: E731
    if error is None:
        assert call()["status"] == final
    else:
        with pytest.raises(error, match=rf"PyTorchJob {NS}/demo failed \(PyTorchJobFailed: loss is NaN\)"):
            call()
    assert seen == ["Created", "Running", final["conditions"][-1]["type"]]
    watch = api.calls("GET", "pytorchjobs")[1]
    assert watch.query["watch"] == "True" and watch.query["fieldSelector"] == "metadata.name=demo"
    assert watch.query["resourceVersion"] == "1"  # from the get: no state change can be missed in between


def test_wait_times_out_while_the_job_runs(api: FakeApiServer, backend: PyTorchJobBackend) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob() | {"status": job_status("Created", "Running", active=1)})
    with pytest.raises(WaitTimeout, match=rf"PyTorchJob {NS}/demo is still Running after 1s") as err:
        backend.wait("demo", 1, lambda _: None)
    assert err.value.exit_code == 3


def test_delete_removes_job_and_labelled_companions_but_keeps_volumes(
    api: FakeApiServer, backend: PyTorchJobBackend
) -> None:
    for obj in companions():
        prefix = "api/v1" if obj["apiVersion"] == "v1" else f"apis/{obj['apiVersion']}"
        api.put(prefix, obj["kind"].lower() + "s" if obj["kind"] != "NetworkPolicy" else "networkpolicies", obj)
    api.put(JOBS, "pytorchjobs", pytorchjob())
    other = companions("other")[1]
    api.put(CORE, "configmaps", other)
    pvc = {"metadata": {"name": "demo-runs", "namespace": NS, "labels": {"app.kubernetes.io/instance": "demo"}}}
    api.put(CORE, "persistentvolumeclaims", pvc)
    backend.delete("demo", lambda _: None)
    deleted = [r.path for r in api.calls("DELETE")]
    assert deleted == [
        f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs/demo",
        f"/api/v1/namespaces/{NS}/configmaps/demo-config",
        f"/api/v1/namespaces/{NS}/serviceaccounts/demo",
        f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/demo",
        f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/prometheusrules/demo",
    ]
    assert api.get(CORE, "configmaps", NS, "other-config") is not None
    assert api.get(CORE, "persistentvolumeclaims", NS, "demo-runs") is not None
    lists = [r for r in api.calls("GET") if "watch" not in r.query]
    assert {r.query.get("labelSelector") for r in lists} == {"app.kubernetes.io/instance=demo"}


def test_wait_resyncs_after_a_watch_expired_by_compaction(api: FakeApiServer, backend: PyTorchJobBackend) -> None:
    api.put(JOBS, "pytorchjobs", pytorchjob() | {"status": job_status("Created")})
    api.expire_watches = 1
    api.on_watch(JOBS, "pytorchjobs", NS, "demo", [job_status("Created", "Running", "Succeeded", succeeded=1)])
    seen: list[str] = []
    backend.wait("demo", 20, lambda job: seen.append(job["status"]["conditions"][-1]["type"]))
    assert seen == ["Created", "Succeeded"]
    gets = [(r.path.rsplit("/", 1)[1], r.query.get("resourceVersion")) for r in api.calls("GET", "pytorchjobs")]
    assert gets == [("demo", None), ("pytorchjobs", "1"), ("demo", None), ("pytorchjobs", "1")]
