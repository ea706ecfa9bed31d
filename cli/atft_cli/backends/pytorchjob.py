"""``--target pytorchjob``: a Kubeflow training-operator v1 PyTorchJob (kubeflow.org/v1 pytorchjobs).

The job goes through the Kubeflow SDK's ``TrainingClient`` (kubeflow-training): its model is the operator's
contract, so a rendered field the model does not know is refused before anything is created, and the SDK's
own calls read the job, its pods (label ``training.kubeflow.org/job-name``) and delete it.
"""

from __future__ import annotations

from typing import Any

from atft_cli.backends.base import JobBackend, true_conditions
from atft_cli.k8s import Target


def pytorchjob_state(job: dict[str, Any]) -> str:
    """The operator's state: Succeeded/Failed if reached, else the latest true condition, else Pending.

    The operator's conditions are Created, Running, Restarting, Suspended, Succeeded and Failed.
    """
    conditions = true_conditions(job)
    for terminal in ("Succeeded", "Failed"):
        if any(c.get("type") == terminal for c in conditions):
            return terminal
    return str(conditions[-1].get("type")) if conditions else "Pending"


class PyTorchJobBackend(JobBackend):
    """PyTorchJobs through ``TrainingClient``; Master and Worker replicas, container ``pytorch``."""

    target = Target.pytorchjob
    kind, group, version, plural = "PyTorchJob", "kubeflow.org", "v1", "pytorchjobs"
    container = "pytorch"  # the container name the training operator requires
    replica_label = "training.kubeflow.org/replica-type"
    index_label = "training.kubeflow.org/replica-index"
    replica_types = ("master", "worker")

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None):
        from kubeflow.training import TrainingClient

        super().__init__(kubeconfig, context, namespace)
        self.training = TrainingClient(client_configuration=self.api.configuration, namespace=self.namespace)

    def state(self, job: dict[str, Any]) -> str:
        return pytorchjob_state(job)

    def replicas(self, job: dict[str, Any]) -> dict[str, dict[str, int]]:
        statuses = (job.get("status") or {}).get("replicaStatuses") or {}
        return {
            rtype: {k: int(v.get(k) or 0) for k in ("active", "succeeded", "failed")}
            for rtype, v in sorted(statuses.items())
        }

    def shape(self, job: dict[str, Any]) -> str:
        specs = (job.get("spec") or {}).get("pytorchReplicaSpecs") or {}
        return ", ".join(f"{rtype} x{spec.get('replicas', 1)}" for rtype, spec in sorted(specs.items()))

    def get(self, name: str) -> dict[str, Any]:
        with self._errors("get", name):
            job = self.training.get_job(name, namespace=self.namespace)
        return dict(self.api.sanitize_for_serialization(job))

    def pods(self, name: str, replica: str | None = None, index: int | None = None) -> list[dict[str, Any]]:
        with self._errors("list pods of", name, resource="pods"):
            pods = self.training.get_job_pods(name, self.namespace, replica_type=replica, replica_index=index)
        return [dict(self.api.sanitize_for_serialization(p)) for p in pods]

    def _checked(self, job: dict[str, Any]) -> Any:
        """The SDK's model of ``job``; refuses when the round trip would drop or change a field."""
        from kubeflow.training.utils.utils import FakeResponse

        model = self.training.api_client.deserialize(FakeResponse(job), "KubeflowOrgV1PyTorchJob")
        self._refuse_lost(job, self.api.sanitize_for_serialization(model), "kubeflow-training")
        return model

    def _create_job(self, sendable: Any) -> None:
        self.training.create_job(job=sendable, namespace=self.namespace)

    def _delete_job(self, name: str) -> None:
        self.training.delete_job(name, namespace=self.namespace)
