"""JobBackend: the one interface through which the cluster verbs talk to a cluster, and the part both job kinds
share.

Why a facade: every verb (submit, status, logs, wait, delete, list) needs the same kubeconfig handling and the
same translation of API answers into errors a user can act on, each naming ``Kind namespace/name`` and the
command to run next. Two job kinds sit behind it (``--target``), each a subclass beside this module:

* ``pytorchjob``: a Kubeflow training-operator v1 ``PyTorchJob`` (kubeflow.org/v1), through the Kubeflow SDK's
  ``TrainingClient``;
* ``trainjob``: a Kubeflow Trainer v2 ``TrainJob`` (trainer.kubeflow.org/v1alpha1), its model from
  ``kubeflow-trainer-api``, sent with the ``kubernetes`` client's ``CustomObjectsApi``.

This module holds what does not depend on the kind: the kubeconfig and clients, creating the rendered
companions before the job and deleting them after it (through :mod:`atft_cli.backends.objects`), listing jobs
by label, pod logs, the watch loop of ``wait``, and the translation of API answers into errors. A subclass
says which kind, how its state reads, how to send it, and how its pods are labelled. Objects are sent exactly
as rendered: if the SDK's model of the job would drop or change a field, submit fails instead of sending less.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from atft.errors import AtftError
from atft_cli.backends.objects import COMPANIONS, Objects
from atft_cli.k8s import (
    DEFAULT_TARGET,
    ClusterInputError,
    ClusterUnavailable,
    Forbidden,
    JobFailed,
    JobNotFound,
    KubeconfigError,
    NameClash,
    Target,
    WaitTimeout,
    kubeconfig_path,
    resolve_namespace,
)

INSTANCE_LABEL = "app.kubernetes.io/instance"
TERMINAL = ("Succeeded", "Failed")
# What to change when the cluster does not serve a resource (404 on create): a chart value, or the other target.
OFF_SWITCHES = {
    "prometheusrule": "--set monitoring.prometheusRule.enabled=false",
    "pytorchjobs": "--target trainjob",
    "trainjobs": "--target pytorchjob",
}


def true_conditions(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's conditions whose status is ``True``, in the order the controller wrote them."""
    return [c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]


def failure_reason(job: dict[str, Any]) -> str:
    """``reason: message`` of the true ``Failed`` condition (both kinds call it ``Failed``)."""
    for cond in true_conditions(job):
        if cond.get("type") == "Failed":
            return f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
    return "no Failed condition message"


class JobBackend(ABC):
    """A cluster, a namespace and the clients for it. Constructing one reads the kubeconfig, calls no API.

    Subclasses set the kind (``target``, ``kind``, ``group``, ``version``, ``plural``), the training container,
    the pod labels that name a pod's replica and index, the replicas ``atft logs --replica`` accepts (the first
    is the default), and implement the kind-specific methods below.
    """

    target: ClassVar[Target]
    kind: ClassVar[str]
    group: ClassVar[str]
    version: ClassVar[str]
    plural: ClassVar[str]
    container: ClassVar[str]  # the training container, whose log `atft logs` prints
    replica_label: ClassVar[str]
    index_label: ClassVar[str]
    replica_types: ClassVar[tuple[str, ...]]
    companions: ClassVar[tuple[tuple[str, str], ...]] = COMPANIONS

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None):
        from kubernetes import client, config

        path = kubeconfig_path(kubeconfig)
        if not any(os.path.isfile(p) for p in path.split(os.pathsep)):
            raise KubeconfigError(f"kubeconfig {path}: no such file; pass --kubeconfig FILE or set KUBECONFIG")
        self.namespace = resolve_namespace(path, context, namespace)
        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg, persist_config=False)
        except config.ConfigException as exc:
            raise KubeconfigError(f"kubeconfig {path}: {exc}") from exc
        self.api = client.ApiClient(cfg)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.objects = Objects(self.api, self.namespace)

    def ref(self, name: str) -> str:
        return f"{self.kind} {self.namespace}/{name}"

    def command(self, verb: str, name: str = "", extra: str = "") -> str:
        """The ``atft`` command line for ``verb`` on this target and namespace (``--target`` when not default)."""
        target = f" --target {self.target}" if self.target is not DEFAULT_TARGET else ""
        parts = [f"atft {verb}", name, extra]
        return " ".join(p for p in parts if p) + f"{target} -n {self.namespace}"

    # --- what each kind says ---------------------------------------------------------------------------------
    @abstractmethod
    def state(self, job: dict[str, Any]) -> str:
        """Created, Running, Succeeded, Failed, Suspended or Pending (the operator's own word where it has one)."""

    @abstractmethod
    def replicas(self, job: dict[str, Any]) -> dict[str, dict[str, int]]:
        """Per replica type (or replicated job): ``{"active", "succeeded", "failed"}`` counts from the status."""

    @abstractmethod
    def shape(self, job: dict[str, Any]) -> str:
        """What the job asks for, one cell of ``atft list``: ``Master x1, Worker x2``, ``node x2``."""

    @abstractmethod
    def get(self, name: str) -> dict[str, Any]:
        """The job as stored; JobNotFound when there is none."""

    @abstractmethod
    def pods(self, name: str, replica: str | None = None, index: int | None = None) -> list[dict[str, Any]]:
        """The job's pods, optionally only one replica type and index."""

    @abstractmethod
    def _checked(self, job: dict[str, Any]) -> Any:
        """What create sends for ``job``, after the SDK model's round trip; ClusterInputError if it loses a field."""

    @abstractmethod
    def _create_job(self, sendable: Any) -> None:
        """Create the job (what ``_checked`` returned)."""

    @abstractmethod
    def _delete_job(self, name: str) -> None:
        """Delete the job; its pods follow by owner reference."""

    def pod_replica(self, pod: dict[str, Any]) -> tuple[str, str]:
        """``(replica, index)`` of a pod of this job, from its labels (``-`` where a label is missing)."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return labels.get(self.replica_label, "-"), labels.get(self.index_label, "-")

    # --- create ---------------------------------------------------------------------------------------------
    def create(self, objs: Sequence[dict[str, Any]], report: Callable[[str], None]) -> str:
        """Create ``objs`` in order (companions first, the job last); returns the job's name.

        A job of that name already there fails before anything is created, and so does a job the SDK's model
        would not send whole; a clash on a companion names it and what was created so far.
        """
        jobs = [o for o in objs if o.get("kind") == self.kind]
        if len(jobs) != 1:
            raise ClusterInputError(
                f"rendered manifests hold {len(jobs)} {self.kind} objects; expected exactly 1 "
                f"(the chart renders the job of its value `target`, which --target {self.target} sets)"
            )
        job = jobs[0]
        name = job["metadata"]["name"]
        with self._errors("get", name):
            exists = self._exists(name)
        if exists:
            raise NameClash(f"{self.ref(name)} already exists; `{self.command('delete', name)}` or pick another --name")
        sendable = self._checked(job)  # before anything is created: a field the SDK would drop stops here
        created: list[str] = []
        for obj in [o for o in objs if o is not job]:
            what = f"{obj['kind']} {self.namespace}/{obj['metadata']['name']}"
            with self._errors("create", name, what=what, created=created, resource=obj["kind"].lower()):
                self.objects.create(obj)
            created.append(what)
            report(f"created {what}")
        with self._errors("create", name, created=created):
            self._create_job(sendable)
        report(f"created {self.ref(name)}")
        return str(name)

    def create_plain(self, objs: Sequence[dict[str, Any]], report: Callable[[str], None]) -> None:
        """Create ``objs`` in order when they hold no job of a target (a validation's report Job and its ConfigMap);
        a clash or a refusal names the object and what was created so far."""
        created: list[str] = []
        for obj in objs:
            name = obj["metadata"]["name"]
            what = f"{obj['kind']} {self.namespace}/{name}"
            with self._errors("create", name, what=what, created=created, resource=obj["kind"].lower() + "s"):
                self.objects.create(obj)
            created.append(what)
            report(f"created {what}")

    def _refuse_lost(self, job: dict[str, Any], sent: Any, sdk: str) -> None:
        """ClusterInputError naming the fields of ``job`` that ``sent`` (the SDK model's version) lost or changed."""
        if lost := _differences(job, sent, ""):
            raise ClusterInputError(
                f"{self.ref(job['metadata']['name'])}: the {sdk} SDK model would not send "
                f"{', '.join(lost[:5])}; pin a {sdk} release that knows these fields"
            )

    def _exists(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.get_namespaced_custom_object(self.group, self.version, self.namespace, self.plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- read -----------------------------------------------------------------------------------------------
    def list_jobs(self, selector: str | None = None) -> list[dict[str, Any]]:
        """The namespace's jobs of this kind, optionally only those matching the label ``selector``.

        Through ``CustomObjectsApi`` for both kinds: the training SDK's ``list_jobs`` takes no label selector.
        """
        with self._errors("list", ""):
            found = self.custom.list_namespaced_custom_object(
                self.group, self.version, self.namespace, self.plural, label_selector=selector
            )
        return [dict(item) for item in found.get("items") or []]

    def logs(self, pod: str, follow: bool) -> Iterator[str]:
        """Lines of the training container's log; with ``follow`` until the container ends."""
        from kubernetes.watch.watch import iter_resp_lines

        with self._errors("get logs of", pod, what=f"Pod {self.namespace}/{pod}", resource="pods/log"):
            resp = self.core.read_namespaced_pod_log(
                pod, self.namespace, container=self.container, follow=follow, _preload_content=False
            )
            try:
                yield from iter_resp_lines(resp)
            finally:
                resp.release_conn()

    # --- wait -----------------------------------------------------------------------------------------------
    def wait(self, name: str, timeout_s: float, on_change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Follow the job by watch until Succeeded or Failed; ``on_change`` sees every new state.

        Each watch starts at the resourceVersion last seen, so no change is missed between calls; a watch the
        server expired (410 Gone, after etcd compaction) restarts from a fresh get. Raises WaitTimeout after
        ``timeout_s``, JobFailed when the job failed or was deleted.
        """
        deadline = time.monotonic() + timeout_s
        job = self.get(name)
        state = self.state(job)
        on_change(job)
        while state not in TERMINAL and (remaining := deadline - time.monotonic()) > 0:
            for seen in self._watch(name, job["metadata"]["resourceVersion"], remaining):
                job = seen
                if self.state(job) != state:
                    state = self.state(job)
                    on_change(job)
                if state in TERMINAL or time.monotonic() >= deadline:
                    break
        if state == "Failed":
            raise JobFailed(
                f"{self.ref(name)} failed ({failure_reason(job)}); `{self.command('logs', name)}` shows why"
            )
        if state != "Succeeded":
            raise WaitTimeout(
                f"{self.ref(name)} is still {state} after {timeout_s:g}s; "
                f"`{self.command('status', name)}` shows where it is"
            )
        return job

    def _watch(self, name: str, rv: str, remaining: float) -> Iterator[dict[str, Any]]:
        """The job's versions after ``rv`` for at most ``remaining`` seconds (one watch request)."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        stream = watch.Watch().stream(
            self.custom.list_namespaced_custom_object, self.group, self.version, self.namespace, self.plural,
            field_selector=f"metadata.name={name}", resource_version=rv, timeout_seconds=max(1, math.ceil(remaining)),
        )  # fmt: skip
        with self._errors("watch", name):
            try:
                for event in stream:
                    if event["type"] == "DELETED":
                        raise JobFailed(f"{self.ref(name)} was deleted while waiting for it")
                    yield event["object"]
            except ApiException as exc:
                if exc.status != 410:
                    raise
                yield self.get(name)  # our resourceVersion was compacted away: resync, then watch from there

    # --- delete ---------------------------------------------------------------------------------------------
    def delete(self, name: str, report: Callable[[str], None]) -> list[tuple[str, str]]:
        """Delete the job (its pods follow by owner reference) and the companions labelled with its instance.

        Companions go even when the job is gone (a submit that stopped half way); JobNotFound when neither exists.
        Returns ``(kind, name)`` of every object deleted, in the order deleted.
        """
        found: list[tuple[str, str]] = []
        try:
            with self._errors("delete", name):
                self._delete_job(name)
            found.append((self.kind, name))
            report(f"deleted {self.ref(name)}")
        except JobNotFound:
            pass
        selector = f"{INSTANCE_LABEL}={name}"
        for api_version, kind in self.companions:
            with self._errors("list", "", what=f"{kind}s in namespace {self.namespace}", resource=kind.lower()):
                others = self.objects.names(api_version, kind, selector)
            for other in others:
                with self._errors("delete", name, what=f"{kind} {self.namespace}/{other}", resource=kind.lower()):
                    self.objects.delete(api_version, kind, other)
                found.append((kind, other))
                report(f"deleted {kind} {self.namespace}/{other}")
        if not found:
            raise JobNotFound(f"{self.ref(name)} not found, nor objects labelled {selector}; `{self.command('list')}`")
        return found

    # --- errors ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(
        self, action: str, name: str, what: str | None = None, created: Sequence[str] = (), resource: str = ""
    ) -> Iterator[None]:
        """Turn an API answer (or no answer) into an error naming the object and the command to run next."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            yield
        except AtftError:
            raise
        except (ApiException, HTTPError, RuntimeError, TimeoutError, OSError) as exc:  # the SDK wraps in RuntimeError
            what = what or (self.ref(name) if name else f"{self.kind}s in namespace {self.namespace}")
            resource = resource or self.plural
            ns = self.namespace
            done = f" (already created: {', '.join(created)}; `{self.command('delete', name)}` removes them)"
            done = done if created else ""
            cause = _root(exc)
            if not isinstance(cause, ApiException):
                reason = str(getattr(cause, "reason", None) or cause).split(": ")[-1]
                raise ClusterUnavailable(
                    f"cannot {action} {what}: no answer from {self.api.configuration.host} ({reason}){done}; "
                    "check `kubectl cluster-info` and retry"
                ) from exc
            message = _message(cause)
            if cause.status == 404 and action == "create":
                off = f", or submit with {OFF_SWITCHES[resource]}" if resource in OFF_SWITCHES else ""
                raise ClusterInputError(
                    f"cannot create {what}: {message}; does namespace {ns} exist, and does the cluster serve "
                    f"{resource} (`kubectl api-resources | grep -i {resource}`){off}?{done}"
                ) from exc
            if cause.status == 404:
                raise JobNotFound(f"{what} not found; `{self.command('list')}` shows the jobs there") from exc
            if cause.status == 409:
                raise NameClash(
                    f"{what} already exists{done}; `{self.command('delete', name)}` or pick another --name"
                ) from exc
            if cause.status in (401, 403):
                raise Forbidden(
                    f"cannot {action} {what}: {message}; check the kubeconfig user and its RBAC "
                    f"(`kubectl auth can-i {action.split()[0]} {resource} -n {ns}`){done}"
                ) from exc
            raise ClusterUnavailable(
                f"cannot {action} {what}: {message}{done}; retry, or check the API server"
            ) from exc


def _root(exc: BaseException) -> BaseException:
    """The API answer (an ApiException) in the chain, else the innermost cause.

    The SDK wraps everything in RuntimeError, sometimes only as ``__context__``.
    """
    from kubernetes.client.exceptions import ApiException

    seen: BaseException = exc
    while not isinstance(seen, ApiException) and (nxt := seen.__cause__ or seen.__context__) is not None:
        seen = nxt
    return seen


def _message(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"HTTP {exc.status} {exc.reason}"


def _differences(want: Any, got: Any, path: str) -> list[str]:
    """Fields of ``want`` missing or changed in ``got``; a number sent as its string (a quantity) is equal."""
    if isinstance(want, dict) and isinstance(got, dict):
        return [d for k, v in want.items() for d in _differences(v, got.get(k), f"{path}.{k}" if path else k)]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [d for i, (a, b) in enumerate(zip(want, got, strict=True)) for d in _differences(a, b, f"{path}[{i}]")]
    if want == got or (isinstance(want, int | float) and not isinstance(want, bool) and got == str(want)):
        return []
    return [path]
