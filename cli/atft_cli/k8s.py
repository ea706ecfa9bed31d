"""The cluster vocabulary every cluster verb shares: the job kinds (``--target``), the errors with their exit
codes, and the namespace a kubeconfig selects.

Each error names the object as ``Kind namespace/name`` and the command to run next; its exit code is what
``atft`` exits with (2 input, 4 unavailable, 1 failed, 3 timed out). The backends that raise them, one per job
kind behind one interface (:class:`atft_cli.backends.base.JobBackend`), live in :mod:`atft_cli.backends`.
"""

from __future__ import annotations

import os
from enum import StrEnum

from atft.errors import AtftError


class Target(StrEnum):
    """The job kind a cluster verb works on (``--target``); the chart value ``target`` renders it."""

    pytorchjob = "pytorchjob"
    trainjob = "trainjob"


DEFAULT_TARGET = Target.pytorchjob


class ClusterInputError(AtftError):
    """Something the user can fix: a kubeconfig, a name, a namespace, a permission."""

    exit_code = 2


class KubeconfigError(ClusterInputError):
    """No usable kubeconfig or context."""


class JobNotFound(ClusterInputError):
    """The named job (or its pods) does not exist in the namespace."""


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


def resolve_namespace(kubeconfig: str | None, context: str | None, namespace: str | None) -> str:
    """``-n`` if given, else the context's namespace, else ``default`` (what kubectl does); no API call."""
    if namespace:
        return namespace
    from kubernetes import config

    path = kubeconfig_path(kubeconfig)
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


def kubeconfig_path(kubeconfig: str | None) -> str:
    """``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``: kubectl's order."""
    return os.path.expanduser(kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config")
