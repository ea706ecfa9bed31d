"""JobBackend: the one place atft talks to a cluster -- create, get, list, watch, logs and delete PyTorchJobs.

Why a facade: every verb (submit, status, logs, wait, delete, list) needs the same kubeconfig handling and the
same translation of API answers into errors a user can act on, each naming ``namespace/name`` and the command
to run next. The PyTorchJob goes through the Kubeflow SDK's ``TrainingClient`` (its model is the operator's
contract); the other rendered objects (ConfigMap, ServiceAccount, NetworkPolicy, PrometheusRule, ...) through
the ``kubernetes`` client: typed APIs for core kinds, ``CustomObjectsApi`` for CRDs. Objects are sent exactly
as rendered: if the SDK's model would drop a field of the PyTorchJob, submit fails instead of sending less.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from atft.errors import AtftError

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
CONTAINER = "pytorch"  # the container name the training operator requires
INSTANCE_LABEL = "app.kubernetes.io/instance"
TERMINAL = ("Succeeded", "Failed")
# CRDs the chart may render, with their plural (no discovery round trip: the list is the contract).
CRD_PLURALS = {"PrometheusRule": "prometheusrules", "ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors"}
# What `atft delete` removes beside the job. PersistentVolumeClaims are kept: they hold the checkpoints.
# The chart value that turns each CRD object off, for clusters without that operator.
CRD_SWITCHES = {"prometheusrule": "monitoring.prometheusRule.enabled=false"}
_CORE_COMPANIONS = ("ConfigMap", "ServiceAccount", "Secret", "Service")
COMPANIONS = (
    *(("v1", kind) for kind in _CORE_COMPANIONS),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    *(("monitoring.coreos.com/v1", kind) for kind in CRD_PLURALS),
)


class ClusterInputError(AtftError):
    """Something the user can fix: a kubeconfig, a name, a namespace, a permission."""

    exit_code = 2


class KubeconfigError(ClusterInputError):
    """No usable kubeconfig or context."""


class JobNotFound(ClusterInputError):
    """The named PyTorchJob (or its pods) does not exist in the namespace."""


class NameClash(ClusterInputError):
    """An object of that name already exists (HTTP 409)."""


class Forbidden(ClusterInputError):
    """The API server refused the request for these credentials (HTTP 401/403)."""


class ClusterUnavailable(AtftError):
    """The API server could not be reached or answered with a server error; retrying may work."""

    exit_code = 4


class JobFailed(AtftError):
    """The job ran and failed (or was deleted while waited on)."""

    exit_code = 1


class WaitTimeout(AtftError):
    """The job did not finish within ``--timeout``."""

    exit_code = 3


def job_state(job: dict[str, Any]) -> str:
    """The operator's current state: Succeeded/Failed if reached, else the latest true condition, else Pending."""
    conditions = [c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    for terminal in TERMINAL:
        if any(c.get("type") == terminal for c in conditions):
            return terminal
    return str(conditions[-1].get("type")) if conditions else "Pending"


def failure_reason(job: dict[str, Any]) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
    return "no Failed condition message"


def resolve_namespace(kubeconfig: str | None, context: str | None, namespace: str | None) -> str:
    """``-n`` if given, else the context's namespace, else ``default`` (what kubectl does); no API call."""
    if namespace:
        return namespace
    from kubernetes import config

    path = _kubeconfig_path(kubeconfig)
    if not any(os.path.isfile(p) for p in path.split(os.pathsep)):
        return "default"
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
    except config.ConfigException as exc:
        raise KubeconfigError(f"{path}: {exc}") from exc
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    if chosen is None:
        names = ", ".join(c["name"] for c in contexts)
        raise KubeconfigError(f"{path}: context {context!r} not found; allowed: {names}")
    return str(chosen.get("context", {}).get("namespace") or "default")


class JobBackend:
    """A cluster, a namespace and the clients for it. Constructing one reads the kubeconfig, calls no API."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None):
        from kubeflow.training import TrainingClient
        from kubernetes import client, config

        path = _kubeconfig_path(kubeconfig)
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
        self.training = TrainingClient(client_configuration=cfg, namespace=self.namespace)

    def ref(self, name: str) -> str:
        return f"{KIND} {self.namespace}/{name}"

    # --- create ---------------------------------------------------------------------------------------------
    def create(self, objs: Sequence[dict[str, Any]], report: Callable[[str], None]) -> str:
        """Create ``objs`` in order (companions first, the PyTorchJob last); returns the job's name.

        A job of that name already there fails before anything is created; a clash on a companion names it and
        what was created so far.
        """
        jobs = [o for o in objs if o.get("kind") == KIND]
        if len(jobs) != 1:
            raise ClusterInputError(f"rendered manifests hold {len(jobs)} {KIND} objects; expected exactly 1")
        job = jobs[0]
        name = job["metadata"]["name"]
        with self._errors("get", name):
            exists = self._exists(name)
        if exists:
            raise NameClash(
                f"{self.ref(name)} already exists; `atft delete {name} -n {self.namespace}` or pick another --name"
            )
        model = self._job_model(job)  # before anything is created: a field the SDK would drop stops here
        created: list[str] = []
        for obj in [o for o in objs if o is not job]:
            what = f"{obj['kind']} {self.namespace}/{obj['metadata']['name']}"
            with self._errors("create", name, what=what, created=created, resource=obj["kind"].lower()):
                self._create_other(obj)
            created.append(what)
            report(f"created {what}")
        with self._errors("create", name, created=created):
            self.training.create_job(job=model, namespace=self.namespace)
        report(f"created {self.ref(name)}")
        return str(name)

    def _job_model(self, job: dict[str, Any]) -> Any:
        """The SDK's model of ``job``; refuses when the round trip would drop or change a field."""
        from kubeflow.training.utils.utils import FakeResponse

        model = self.training.api_client.deserialize(FakeResponse(job), "KubeflowOrgV1PyTorchJob")
        sent = self.api.sanitize_for_serialization(model)
        if lost := _differences(job, sent, ""):
            raise ClusterInputError(
                f"{self.ref(job['metadata']['name'])}: the kubeflow-training SDK model would not send "
                f"{', '.join(lost[:5])}; pin a kubeflow-training release that knows these fields"
            )
        return model

    def _create_other(self, obj: dict[str, Any]) -> None:
        api_version, kind = obj["apiVersion"], obj["kind"]
        if kind in CRD_PLURALS:
            group, _, version = api_version.partition("/")
            self.custom.create_namespaced_custom_object(group, version, self.namespace, CRD_PLURALS[kind], obj)
        else:
            api, snake = self._typed(api_version, kind)
            getattr(api, f"create_namespaced_{snake}")(self.namespace, obj)

    def _typed(self, api_version: str, kind: str) -> tuple[Any, str]:
        """The typed API class and method suffix for a core kind (the mapping ``kubectl`` uses, no discovery)."""
        from kubernetes import client

        group, _, version = api_version.partition("/")
        if not version:
            group, version = "core", group
        group = "".join(word.capitalize() for word in group.removesuffix(".k8s.io").split("."))
        api_cls = getattr(client, f"{group}{version.capitalize()}Api", None)
        snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", kind)).lower()
        if api_cls is None or not hasattr(api_cls, f"create_namespaced_{snake}"):
            raise ClusterInputError(f"{api_version} {kind}: not a namespaced kind atft knows how to create")
        return api_cls(self.api), snake

    def _exists(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- read -----------------------------------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any]:
        with self._errors("get", name):
            job = self.training.get_job(name, namespace=self.namespace)
        return dict(self.api.sanitize_for_serialization(job))

    def list_jobs(self) -> list[dict[str, Any]]:
        with self._errors("list", ""):
            jobs = self.training.list_jobs(namespace=self.namespace)
        return [dict(self.api.sanitize_for_serialization(j)) for j in jobs]

    def pods(self, name: str, replica: str | None = None, index: int | None = None) -> list[dict[str, Any]]:
        with self._errors("list pods of", name, resource="pods"):
            pods = self.training.get_job_pods(name, self.namespace, replica_type=replica, replica_index=index)
        return [dict(self.api.sanitize_for_serialization(p)) for p in pods]

    def logs(self, pod: str, follow: bool) -> Iterator[str]:
        """Lines of the training container's log; with ``follow`` until the container ends."""
        from kubernetes.watch.watch import iter_resp_lines

        with self._errors("get logs of", pod, what=f"Pod {self.namespace}/{pod}", resource="pods/log"):
            resp = self.core.read_namespaced_pod_log(
                pod, self.namespace, container=CONTAINER, follow=follow, _preload_content=False
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
        state = job_state(job)
        on_change(job)
        while state not in TERMINAL and (remaining := deadline - time.monotonic()) > 0:
            for seen in self._watch(name, job["metadata"]["resourceVersion"], remaining):
                job = seen
                if job_state(job) != state:
                    state = job_state(job)
                    on_change(job)
                if state in TERMINAL or time.monotonic() >= deadline:
                    break
        if state == "Failed":
            raise JobFailed(
                f"{self.ref(name)} failed ({failure_reason(job)}); `atft logs {name} -n {self.namespace}` shows why"
            )
        if state != "Succeeded":
            raise WaitTimeout(
                f"{self.ref(name)} is still {state} after {timeout_s:g}s; "
                f"`atft status {name} -n {self.namespace}` shows where it is"
            )
        return job

    def _watch(self, name: str, rv: str, remaining: float) -> Iterator[dict[str, Any]]:
        """The job's versions after ``rv`` for at most ``remaining`` seconds (one watch request)."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        stream = watch.Watch().stream(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL,
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
                self.training.delete_job(name, namespace=self.namespace)
            found.append((KIND, name))
            report(f"deleted {self.ref(name)}")
        except JobNotFound:
            pass
        selector = f"{INSTANCE_LABEL}={name}"
        for api_version, kind in COMPANIONS:
            for other in self._list_kind(api_version, kind, selector):
                with self._errors("delete", name, what=f"{kind} {self.namespace}/{other}", resource=kind.lower()):
                    self._delete_kind(api_version, kind, other)
                found.append((kind, other))
                report(f"deleted {kind} {self.namespace}/{other}")
        if not found:
            raise JobNotFound(
                f"{self.ref(name)} not found, nor objects labelled {selector}; `atft list -n {self.namespace}`"
            )
        return found

    def _list_kind(self, api_version: str, kind: str, selector: str) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        with self._errors("list", "", what=f"{kind}s in namespace {self.namespace}", resource=kind.lower()):
            try:
                if kind in CRD_PLURALS:
                    group, _, version = api_version.partition("/")
                    found = self.custom.list_namespaced_custom_object(
                        group, version, self.namespace, CRD_PLURALS[kind], label_selector=selector
                    )
                    return sorted(o["metadata"]["name"] for o in found.get("items", []))
                api, snake = self._typed(api_version, kind)
                items = getattr(api, f"list_namespaced_{snake}")(self.namespace, label_selector=selector).items
            except ApiException as exc:
                if exc.status == 404 and kind in CRD_PLURALS:  # that CRD is not installed: nothing of it to delete
                    return []
                raise
        return sorted(o.metadata.name for o in items)

    def _delete_kind(self, api_version: str, kind: str, name: str) -> None:
        if kind in CRD_PLURALS:
            group, _, version = api_version.partition("/")
            self.custom.delete_namespaced_custom_object(group, version, self.namespace, CRD_PLURALS[kind], name)
        else:
            api, snake = self._typed(api_version, kind)
            getattr(api, f"delete_namespaced_{snake}")(name, self.namespace)

    # --- errors ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(
        self, action: str, name: str, what: str | None = None, created: Sequence[str] = (), resource: str = PLURAL
    ) -> Iterator[None]:
        """Turn an API answer (or no answer) into an error naming the object and the command to run next."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            yield
        except AtftError:
            raise
        except (ApiException, HTTPError, RuntimeError, TimeoutError, OSError) as exc:  # the SDK wraps in RuntimeError
            what = what or (self.ref(name) if name else f"{KIND}s in namespace {self.namespace}")
            ns = self.namespace
            done = f" (already created: {', '.join(created)}; `atft delete {name} -n {ns}` removes them)"
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
                off = f", or submit with --set {CRD_SWITCHES[resource]}" if resource in CRD_SWITCHES else ""
                raise ClusterInputError(
                    f"cannot create {what}: {message}; does namespace {ns} exist, and does the cluster serve "
                    f"{resource} (`kubectl api-resources | grep -i {resource}`){off}?{done}"
                ) from exc
            if cause.status == 404:
                raise JobNotFound(f"{what} not found; `atft list -n {ns}` shows the jobs there") from exc
            if cause.status == 409:
                raise NameClash(
                    f"{what} already exists{done}; `atft delete {name} -n {ns}` or pick another --name"
                ) from exc
            if cause.status in (401, 403):
                raise Forbidden(
                    f"cannot {action} {what}: {message}; check the kubeconfig user and its RBAC "
                    f"(`kubectl auth can-i {action.split()[0]} {resource} -n {ns}`){done}"
                ) from exc
            raise ClusterUnavailable(
                f"cannot {action} {what}: {message}{done}; retry, or check the API server"
            ) from exc


def _kubeconfig_path(kubeconfig: str | None) -> str:
    return os.path.expanduser(kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config")


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
