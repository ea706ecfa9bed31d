"""The objects the chart renders beside the job, addressed by apiVersion and kind: create, list by label, delete.

Why apart from the backends: the companions (ConfigMap, ServiceAccount, Secret, Service, NetworkPolicy, the
monitoring CRDs, the chart's TrainingRuntime) are the same for both job kinds. Core kinds go through the
``kubernetes`` client's typed APIs, CRDs through ``CustomObjectsApi``; no discovery round trip: which CRDs
exist and their plurals is the list here (the contract with the chart). API errors propagate unchanged; the
backend turns them into messages that name the object.
"""

from __future__ import annotations

import re
from typing import Any

from atft_cli.k8s import ClusterInputError

# CRDs the chart may render beside the job, with their plural.
CRD_PLURALS = {
    "PrometheusRule": "prometheusrules",
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "TrainingRuntime": "trainingruntimes",
}
# What `atft delete` removes beside the job, whatever the target. PersistentVolumeClaims are kept: they hold the
# checkpoints.
COMPANIONS: tuple[tuple[str, str], ...] = (
    *(("v1", kind) for kind in ("ConfigMap", "ServiceAccount", "Secret", "Service")),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    *(("monitoring.coreos.com/v1", kind) for kind in ("PrometheusRule", "ServiceMonitor", "PodMonitor")),
)


class Objects:
    """Namespaced objects of any kind atft renders, in one namespace of one cluster (``api``: an ApiClient)."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def create(self, obj: dict[str, Any]) -> None:
        api_version, kind = obj["apiVersion"], obj["kind"]
        if kind in CRD_PLURALS:
            group, _, version = api_version.partition("/")
            self.custom.create_namespaced_custom_object(group, version, self.namespace, CRD_PLURALS[kind], obj)
        else:
            api, snake = self._typed(api_version, kind)
            getattr(api, f"create_namespaced_{snake}")(self.namespace, obj)

    def names(self, api_version: str, kind: str, selector: str) -> list[str]:
        """Names of the ``kind`` objects matching the label ``selector``, sorted; none when the CRD is not served."""
        from kubernetes.client.exceptions import ApiException

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

    def delete(self, api_version: str, kind: str, name: str) -> None:
        if kind in CRD_PLURALS:
            group, _, version = api_version.partition("/")
            self.custom.delete_namespaced_custom_object(group, version, self.namespace, CRD_PLURALS[kind], name)
        else:
            api, snake = self._typed(api_version, kind)
            getattr(api, f"delete_namespaced_{snake}")(name, self.namespace)

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
