"""``--target trainjob``: a Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1 trainjobs).

The TrainJob is checked against ``kubeflow-trainer-api`` (the TrainJob models the ``kubeflow`` SDK 0.5.0 itself
uses; pure pydantic) and sent with the ``kubernetes`` client's ``CustomObjectsApi``, as rendered. Why not the
whole ``kubeflow`` SDK and its ``TrainerClient``: its ``kubeflow/__init__.py`` collides with the one
kubeflow-training installs (the PyTorchJob backend's SDK); ``TrainerClient`` builds a TrainJob from its own
arguments and cannot send a rendered object verbatim; it reads a ConfigMap in ``kubeflow-system`` when it is
constructed (a namespace a job submitter may not be allowed to read); and it calls ``get_runtime`` on every
``get_job``, a second request for every status poll (and, for a ClusterTrainingRuntime, a cluster-scoped
read permission).

How a TrainJob maps onto atft's words. The Trainer's conditions are Created (older releases), Suspended,
Complete and Failed; ``status.jobsStatus[]`` counts the child Jobs of each replicated job (``node``: one
indexed Job whose completions are the nodes). Pods carry ``jobset.sigs.k8s.io/jobset-name=<TrainJob name>``,
their replicated job in ``jobset.sigs.k8s.io/replicatedjob-name`` and their node rank in
``batch.kubernetes.io/job-completion-index``; the training container is ``node``. ``atft delete`` also removes
the chart's own TrainingRuntime (``trainjob.runtime.create``), labelled with the instance like the other
companions.
"""

from __future__ import annotations

from typing import Any

from atft_cli.backends.base import JobBackend, true_conditions
from atft_cli.backends.objects import COMPANIONS
from atft_cli.k8s import ClusterInputError, Target

JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"


def trainjob_state(job: dict[str, Any]) -> str:
    """atft's state of a TrainJob, in the PyTorchJob backend's words (so status, wait and list read the same).

    Succeeded when Complete is true, Failed when Failed is, Suspended when Suspended is; Running when a child
    Job has an active or ready pod; Created when Created is true or no condition has been written yet (the
    TrainJob exists, its JobSet is on the way); else Pending (conditions, none of them saying it runs: resumed
    and waiting for pods, or a JobSet that could not be built).
    """
    true = {c.get("type") for c in true_conditions(job)}
    for condition, state in (("Complete", "Succeeded"), ("Failed", "Failed"), ("Suspended", "Suspended")):
        if condition in true:
            return state
    status = job.get("status") or {}
    if any(int(j.get("active") or 0) + int(j.get("ready") or 0) > 0 for j in status.get("jobsStatus") or []):
        return "Running"
    if "Created" in true or not status.get("conditions"):
        return "Created"
    return "Pending"


class TrainJobBackend(JobBackend):
    """TrainJobs through ``CustomObjectsApi``; replicated job ``node``, container ``node``."""

    target = Target.trainjob
    kind, group, version, plural = "TrainJob", "trainer.kubeflow.org", "v1alpha1", "trainjobs"
    container = "node"  # the Trainer's torch plugin names the trainer container `node`
    replica_label = "jobset.sigs.k8s.io/replicatedjob-name"
    index_label = "batch.kubernetes.io/job-completion-index"
    replica_types = ("node",)
    companions = (*COMPANIONS, ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"))

    def state(self, job: dict[str, Any]) -> str:
        return trainjob_state(job)

    def replicas(self, job: dict[str, Any]) -> dict[str, dict[str, int]]:
        jobs = (job.get("status") or {}).get("jobsStatus") or []
        return {
            str(j.get("name")): {k: int(j.get(k) or 0) for k in ("active", "succeeded", "failed")}
            for j in sorted(jobs, key=lambda j: str(j.get("name")))
        }

    def shape(self, job: dict[str, Any]) -> str:
        nodes = ((job.get("spec") or {}).get("trainer") or {}).get("numNodes")
        return f"node x{nodes}" if nodes is not None else "node x(runtime's numNodes)"

    def get(self, name: str) -> dict[str, Any]:
        with self._errors("get", name):
            job = self.custom.get_namespaced_custom_object(self.group, self.version, self.namespace, self.plural, name)
        return dict(job)

    def pods(self, name: str, replica: str | None = None, index: int | None = None) -> list[dict[str, Any]]:
        terms = [f"{JOBSET_LABEL}={name}"]
        if replica is not None:
            terms.append(f"{self.replica_label}={replica}")
        if index is not None:
            terms.append(f"{self.index_label}={index}")
        with self._errors("list pods of", name, resource="pods"):
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=",".join(terms)).items
        return [dict(self.api.sanitize_for_serialization(p)) for p in pods]

    def _checked(self, job: dict[str, Any]) -> dict[str, Any]:
        """``job`` itself, once the model has read it whole: a field it would drop or change is refused."""
        from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob
        from pydantic import ValidationError

        try:
            model = TrainerV1alpha1TrainJob.from_dict(job)
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise ClusterInputError(
                f"{self.ref(job['metadata']['name'])}: the kubeflow-trainer-api model rejects {exc.title} "
                f"({fields}); fix the chart value behind it, or pin a kubeflow-trainer-api release that knows it"
            ) from exc
        read = model.to_dict() if model is not None else {}
        # to_dict() keeps datetimes as objects: serialise them as the client would before comparing.
        self._refuse_lost(job, self.api.sanitize_for_serialization(read), "kubeflow-trainer-api")
        return job

    def _create_job(self, sendable: Any) -> None:
        self.custom.create_namespaced_custom_object(self.group, self.version, self.namespace, self.plural, sendable)

    def _delete_job(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(self.group, self.version, self.namespace, self.plural, name)
