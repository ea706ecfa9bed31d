"""``atft submit`` relabels what it creates ``app.kubernetes.io/managed-by: atft``; nothing else changes."""

from __future__ import annotations

import copy

from atft_cli.render import MANAGED_BY, managed_by

HELM = {"app.kubernetes.io/instance": "demo", MANAGED_BY: "Helm"}


def test_object_and_pod_template_labels_change_selectors_and_alert_labels_do_not() -> None:
    job = {
        "kind": "PyTorchJob",
        "metadata": {"name": "demo", "labels": dict(HELM)},
        "spec": {"pytorchReplicaSpecs": {"Master": {"template": {"metadata": {"labels": {**HELM, "c": "master"}}}}}},
    }
    rule = {
        "kind": "PrometheusRule",
        "metadata": {"name": "demo", "labels": dict(HELM)},
        "spec": {"groups": [{"rules": [{"alert": "A", "labels": {"severity": "critical"}}]}]},
    }
    policy = {"kind": "NetworkPolicy", "metadata": {"name": "demo"}, "spec": {"podSelector": {"matchLabels": HELM}}}
    objs = [job, rule, policy]
    before = copy.deepcopy(objs)
    out = managed_by(objs, "atft")
    assert objs == before, "the rendered objects are not mutated"
    assert out[0]["metadata"]["labels"] == {"app.kubernetes.io/instance": "demo", MANAGED_BY: "atft"}
    template = out[0]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["metadata"]["labels"]
    assert template == {"app.kubernetes.io/instance": "demo", MANAGED_BY: "atft", "c": "master"}
    assert out[1]["metadata"]["labels"][MANAGED_BY] == "atft"
    assert out[1]["spec"] == rule["spec"] and out[2] == policy  # alert labels and selectors untouched
