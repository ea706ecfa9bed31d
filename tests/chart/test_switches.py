"""Each values switch toggles exactly what it should (helm-unittest style, on the YAML the real Helm renders)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from chart_helpers import PROD, SCENARIOS, Objects, config_map, containers, one, pod_specs, pod_templates

from atft_cli.render import CHART_DIR, REPO_ROOT, ChartError, render_manifests, to_text

pytestmark = pytest.mark.integration
Render = Callable[..., Objects]


def kinds(objs: Objects) -> list[str]:
    return [o["kind"] for o in objs]


def master(objs: Objects) -> dict[str, Any]:
    return dict(pod_specs(objs))["Master"]


def trainer(pod: dict[str, Any]) -> dict[str, Any]:
    return containers(pod)["pytorch"]


def test_defaults_one_a100_pod_with_native_sidecar(render: Render) -> None:
    objs = render()
    order = kinds(objs)
    assert order[-1] == "PyTorchJob", "apply order: what the pods reference exists before the job"
    assert order.index("ServiceAccount") < order.index("ConfigMap") < order.index("PyTorchJob")
    job = one(objs, "PyTorchJob")
    assert set(job["spec"]["pytorchReplicaSpecs"]) == {"Master"} and job["spec"]["nprocPerNode"] == "1"
    pod = master(objs)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert trainer(pod)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "command" not in trainer(pod), "a single process runs the image entrypoint (python -m atft.train)"
    assert [c["name"] for c in pod["initContainers"]] == ["exporter"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == ["pytorch"]


def test_plain_sidecar_for_old_clusters(render: Render) -> None:
    pod = master(render("exporter.nativeSidecar=false"))
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["pytorch", "exporter"]
    assert "restartPolicy" not in pod["containers"][1]
    assert "--no-exit-on-end" not in pod["containers"][1]["args"], "a plain sidecar must exit for the pod to complete"
    native = containers(master(render()))["exporter"]["args"]
    assert "--no-exit-on-end" in native, "the kubelet would restart a native sidecar that exits"


def test_exporter_only_on_master_and_off_switch(render: Render) -> None:
    specs = dict(pod_specs(render("workers=2")))
    assert "exporter" in containers(specs["Master"]) and "exporter" not in containers(specs["Worker"])
    off = master(render("exporter.enabled=false"))
    assert set(containers(off)) == {"pytorch"}
    assert "exporter-tmp" not in {v["name"] for v in off["volumes"]}


def test_exporter_follows_the_runs_event_file(render: Render) -> None:
    objs = render("exporter.pushgateway=http://pgw.mon:9091", "exporter.interval=30", name="run-7", namespace="team")
    args = containers(master(objs))["exporter"]["args"]
    flags = dict(zip(args[::2], args[1::2], strict=False))
    assert flags["--events"] == "/runs/run-7/events.jsonl"
    assert flags["--pushgateway"] == "http://pgw.mon:9091" and flags["--interval"] == "30"
    assert flags["--job"] == "run-7" and "namespace=team" in args
    mount = {m["name"]: m for m in containers(master(objs))["exporter"]["volumeMounts"]}["runs"]
    assert mount["readOnly"] is True


def test_network_policy_is_on_by_default_and_off_only_when_asked(render: Render) -> None:
    assert "NetworkPolicy" not in kinds(render("networkPolicy.enabled=false"))
    objs = render()
    policy = one(objs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"], "both directions default-deny for the job's pods"
    labels = master_template_labels(objs)
    selector = policy["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items(), "the policy must select the job's pods"
    assert policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": selector}}]}]
    ports = [p["port"] for rule in policy["egress"] for p in rule.get("ports", [])]
    assert ports == [53, 53, 9091]
    no_exporter = one(render("exporter.enabled=false"), "NetworkPolicy")["spec"]
    assert [p["port"] for rule in no_exporter["egress"] for p in rule.get("ports", [])] == [53, 53]


def test_exporter_has_requests_and_limits_by_default_and_they_are_values(render: Render) -> None:
    for sets in [(), ("exporter.nativeSidecar=false",)]:
        sidecar = containers(master(render(*sets)))["exporter"]
        assert sidecar["resources"] == {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        }, sets
    sized = containers(master(render("exporter.resources.limits.memory=512Mi")))["exporter"]["resources"]
    assert sized["limits"] == {"cpu": "500m", "memory": "512Mi"}, "one value changes one field, the rest stay"
    with pytest.raises(ChartError, match=r"exporter\.resources\.limits: missing property 'memory'"):
        render_manifests(PROD, [], ["exporter.resources.limits.memory=null"], "x", "ml")
    with pytest.raises(ChartError, match=r"exporter\.resources\.requests: additional properties 'gpu' not allowed"):
        render_manifests(PROD, [], ["exporter.resources.requests.gpu=1"], "x", "ml")


def master_template_labels(objs: Objects) -> dict[str, str]:
    return one(objs, "PyTorchJob")["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["metadata"]["labels"]


def test_kueue_label_only_when_a_queue_is_set(render: Render) -> None:
    assert "kueue.x-k8s.io/queue-name" not in one(render(), "PyTorchJob")["metadata"]["labels"]
    job = one(render("scheduling.kueueQueue=a100-queue"), "PyTorchJob")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "a100-queue"


def test_elastic_policy(render: Render) -> None:
    assert "elasticPolicy" not in one(render("workers=1"), "PyTorchJob")["spec"]
    objs = render("workers=2", "elastic.enabled=true", "elastic.minReplicas=2", "elastic.maxReplicas=3")
    job = one(objs, "PyTorchJob")
    assert job["spec"]["elasticPolicy"] == {"rdzvBackend": "c10d", "minReplicas": 2, "maxReplicas": 3, "maxRestarts": 3}
    assert job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    with pytest.raises(ChartError, match=r"elastic\.enabled: needs workers >= 1"):
        render_manifests(PROD, [], ["elastic.enabled=true"], "x", "ml")
    with pytest.raises(ChartError, match=r"elastic\.maxReplicas=2: must be at least 1 \+ workers = 4"):
        render_manifests(PROD, [], ["elastic.enabled=true", "workers=3"], "x", "ml")


def test_distributed_runs_torchrun(render: Render) -> None:
    objs = render("gpusPerPod=8", "workers=1")
    job = one(objs, "PyTorchJob")
    assert job["spec"]["nprocPerNode"] == "8"
    for _, pod in pod_specs(objs):
        assert trainer(pod)["command"] == ["python", "-m", "atft.train.torchrun"]
        assert trainer(pod)["args"][:2] == ["-m", "atft.train"]
        assert trainer(pod)["resources"]["requests"]["nvidia.com/gpu"] == 8


def test_gpu_node_label_override_replaces_the_a100_default(render: Render) -> None:
    gke = master(
        render(
            "scheduling.gpuNodeLabel.key=cloud.google.com/gke-accelerator",
            "scheduling.gpuNodeLabel.value=nvidia-h100-80gb",
            "scheduling.nodeSelector.pool=training",
        )
    )
    assert gke["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb", "pool": "training"}
    assert "nodeSelector" not in master(render("scheduling.gpuNodeLabel.key="))


def test_cpu_pod_has_no_gpu_anything(render: Render) -> None:
    pod = master(render("gpusPerPod=0", "data.source=none", "scheduling.nodeSelector.pool=cpu"))
    assert pod["nodeSelector"] == {"pool": "cpu"}
    assert "tolerations" not in pod
    assert "nvidia.com/gpu" not in str(trainer(pod)["resources"])
    assert "data" not in {v["name"] for v in pod["volumes"]}
    assert "data" not in {m["name"] for m in trainer(pod)["volumeMounts"]}


def test_volumes_shm_and_data_sources(render: Render) -> None:
    pod = master(render("shmSize=32Gi", "dataFile=panel.parquet"))
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    assert vols["data"]["persistentVolumeClaim"] == {"claimName": "atft-data", "readOnly": True}
    assert vols["runs"]["persistentVolumeClaim"] == {"claimName": "atft-runs"}
    mounts = {m["name"]: m for m in trainer(pod)["volumeMounts"]}
    assert mounts["data"]["readOnly"] and mounts["dshm"]["mountPath"] == "/dev/shm"
    assert trainer(pod)["args"][-2:] == ["--data", "/data/panel.parquet"]
    csi = master(render("data.source=csi", "data.csi.driver=gcsfuse.csi.storage.gke.io"))
    assert {v["name"]: v for v in csi["volumes"]}["data"]["csi"] == {
        "driver": "gcsfuse.csi.storage.gke.io",
        "readOnly": True,
    }


def test_training_args_env_and_grace_period(render: Render) -> None:
    pod = master(render("env.NCCL_DEBUG=INFO", "env.A_FIRST=1", name="prod-a"))
    c = trainer(pod)
    assert c["args"] == ["--config", "/etc/atft/config.yaml", "--out", "/runs/prod-a", "--resume", "auto"]
    env = [(e["name"], e.get("value")) for e in c["env"]]
    assert ("ATFT_RUN_ID", "prod-a") in env and ("MPLCONFIGDIR", "/tmp/matplotlib") in env
    assert ("ATFT_CACHE_DIR", "/runs/.cache/atft") in env, "cached panels survive a pod restart on the run volume"
    assert env[-2:] == [("A_FIRST", "1"), ("NCCL_DEBUG", "INFO")], "extra env after the chart's, sorted by name"
    assert pod["terminationGracePeriodSeconds"] == 90
    with pytest.raises(ChartError, match=r"terminationGracePeriodSeconds: minimum: got 59, want 60"):
        render_manifests(PROD, [], ["terminationGracePeriodSeconds=59"], "x", "ml")


OWN_RUNTIME = ("target=trainjob", "trainjob.runtime.create=true")


@pytest.mark.parametrize(
    ("sets", "pods"),
    [
        ((), {"PyTorchJob/Master": 2}),
        (("exporter.nativeSidecar=false",), {"PyTorchJob/Master": 2}),
        (("workers=1",), {"PyTorchJob/Master": 2, "PyTorchJob/Worker": 1}),
        (("target=trainjob", "exporter.enabled=false", "workers=1"), {"TrainJob/runtimePatches": 1}),
        ((*OWN_RUNTIME, "workers=1"), {"TrainingRuntime/node": 2}),
        ((*OWN_RUNTIME, "exporter.nativeSidecar=false"), {"TrainingRuntime/node": 2}),
        (("validation.id=wf", "validation.report=true"), {"Job/atft-test": 1}),
    ],
    ids=["pytorchjob", "plain-sidecar", "workers", "trainjob-upstream", "trainjob-own", "trainjob-own-plain", "report"],
)
def test_every_pod_of_every_target_is_hardened(render: Render, sets: tuple[str, ...], pods: dict[str, int]) -> None:
    """Non-root, read-only root, no capabilities, seccomp, no service-account token: every pod template of every
    target (PyTorchJob replicas, the chart's TrainingRuntime, the TrainJob's patch of upstream's pods, the report
    Job), each of its containers. ``pods``: the templates and their container counts, so none goes unchecked."""
    objs = render(*sets)
    assert one(objs, "ServiceAccount")["automountServiceAccountToken"] is False
    templates = dict(pod_templates(objs))
    assert {where: len(containers(t["spec"])) for where, t in templates.items()} == pods
    assert_hardened(objs)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_of_every_scenario_is_hardened(render: Render, scenario: str) -> None:
    objs = render(values=(CHART_DIR / "ci" / scenario,))
    assert list(pod_templates(objs)), f"{scenario}: no pod template"
    assert_hardened(objs)


def assert_hardened(objs: Objects) -> None:
    """The security contexts of every pod template of ``objs`` and of each of its containers."""
    for where, template in pod_templates(objs):
        pod = template["spec"]
        if where == "TrainJob/runtimePatches":  # a patch cannot set it: the chart's ServiceAccount's false applies
            assert "automountServiceAccountToken" not in pod
            account = one(objs, "ServiceAccount")
            assert account["automountServiceAccountToken"] is False
            assert pod["serviceAccountName"] == account["metadata"]["name"]
        else:
            assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for name, c in containers(pod).items():
            sc, what = c["securityContext"], f"{where}/{name}"
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, what
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, what
            assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}, what
            assert sc["privileged"] is False, what
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, f"{what}: /tmp must be a writable volume"


def test_scheduling_knobs(render: Render) -> None:
    plain = master(render())
    assert "priorityClassName" not in plain and "schedulerName" not in plain
    pod = master(render("scheduling.priorityClassName=high", "scheduling.schedulerName=volcano"))
    assert pod["priorityClassName"] == "high" and pod["schedulerName"] == "volcano"


def test_service_account_and_image_pins(render: Render) -> None:
    objs = render("serviceAccount.create=false", "serviceAccount.name=trainer")
    assert "ServiceAccount" not in kinds(objs) and master(objs)["serviceAccountName"] == "trainer"
    with pytest.raises(ChartError, match=r"serviceAccount\.name: required when serviceAccount\.create is false"):
        render_manifests(PROD, [], ["serviceAccount.create=false"], "x", "ml")
    digest = "sha256:" + "a" * 64
    assert trainer(master(render(f"image.digest={digest}")))["image"] == f"ghcr.io/atft/atft@{digest}"
    assert trainer(master(render("image.tag=1.2.3")))["image"] == "ghcr.io/atft/atft:1.2.3"


def test_run_policy_zero_means_unset(render: Render) -> None:
    policy = one(render("runPolicy.activeDeadlineSeconds=0"), "PyTorchJob")["spec"]["runPolicy"]
    assert "activeDeadlineSeconds" not in policy and policy["backoffLimit"] == 3


def test_config_map_is_the_config_file_byte_for_byte(render: Render) -> None:
    cm = config_map(render())
    assert cm["data"]["config.yaml"] == PROD.read_text()
    job = one(render(), "PyTorchJob")
    volume = {v["name"]: v for v in master(render())["volumes"]}["config"]
    assert volume["configMap"]["name"] == cm["metadata"]["name"] == f"{job['metadata']['name']}-config"


def test_values_typo_names_the_key(render: Render) -> None:
    with pytest.raises(ChartError, match=r"exporter: additional properties 'enabeld' not allowed"):
        render_manifests(PROD, [], ["exporter.enabeld=true"], "x", "ml")
    with pytest.raises(ChartError, match=r"runPolicy\.cleanPodPolicy: value must be one of 'None', 'Running', 'All'"):
        render_manifests(PROD, [], ["runPolicy.cleanPodPolicy=Never"], "x", "ml")


def test_config_bytes_survive_helm_and_render_output(tmp_path: Path) -> None:
    """Trailing spaces, tabs, CRLF, non-ASCII, quotes, no final newline: the ConfigMap still equals the file."""
    text = (REPO_ROOT / "configs" / "debug.yaml").read_text()
    text += "# trailing   \n# tab\there, é 日本 <a&b> \"q\" 'x' \\ \r\n\n\n# no final newline"
    config = tmp_path / "tricky.yaml"
    config.write_bytes(text.encode())
    objs = render_manifests(config, [], [], "tricky", "ml")
    assert config_map(objs)["data"]["config.yaml"] == text
    for fmt, load in (
        ("yaml", lambda s: [d for d in yaml.safe_load_all(s) if d]),
        ("json", lambda s: json.loads(s)["items"]),
    ):
        assert load(to_text(objs, fmt)) == objs, fmt


@pytest.mark.parametrize(
    ("native", "scrape"), [("true", "false"), ("false", "false"), ("true", "true")], ids=["native", "plain", "scrape"]
)
def test_sidecar_args_parse_with_the_real_exporter_command(render: Render, native: str, scrape: str) -> None:
    """Every flag the chart gives the sidecar is one `atft exporter` accepts (parsed, not run)."""
    from atft_cli.main import app

    sets = (f"exporter.nativeSidecar={native}", f"monitoring.podMonitor.enabled={scrape}")
    sidecar = containers(master(render(*sets)))["exporter"]
    assert sidecar["command"] == ["atft", "exporter"]
    root = typer.main.get_group(app)
    with root.make_context("atft", ["exporter"]) as ctx:
        command = root.get_command(ctx, "exporter")
        assert command is not None
        parsed = command.make_context("exporter", list(sidecar["args"]), parent=ctx).params
    assert parsed["exit_on_end"] is (native == "false")
    assert parsed["listen_port"] == (9400 if scrape == "true" else None)
    assert parsed["interval"] == 15.0 and str(parsed["events"]) == "/runs/atft-test/events.jsonl"
    assert parsed["grouping"] == [
        "namespace=ml",
        "replica_type=$(REPLICA_TYPE)",
        "replica_index=$(REPLICA_INDEX)",
        "run_id=atft-test",
    ]


def test_paths_with_commas_quotes_and_equals(tmp_path: Path) -> None:
    """Helm splits --set-file and --values on commas; paths are escaped so any file name works."""
    config = tmp_path / "a,b" / "c=d.yaml"
    config.parent.mkdir()
    config.write_text(PROD.read_text())
    values = tmp_path / "a,b" / 'v"1".yaml'
    values.write_text("workers: 2\n")
    objs = render_manifests(config, [values], [], "x", "ml")
    assert config_map(objs)["data"]["config.yaml"] == PROD.read_text()
    assert one(objs, "PyTorchJob")["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2


def test_scrape_mode_opens_the_metrics_port(render: Render) -> None:
    """monitoring.podMonitor scrapes the exporter: it serves /metrics on a named port, the policy lets Prometheus in."""
    assert "ports" not in containers(master(render()))["exporter"]
    objs = render("monitoring.podMonitor.enabled=true", "exporter.pushgateway=")
    sidecar = containers(master(objs))["exporter"]
    assert sidecar["ports"] == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}]
    assert "--pushgateway" not in sidecar["args"] and sidecar["args"][2:4] == ["--listen-port", "9400"]
    assert one(objs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    policy = one(objs, "NetworkPolicy")["spec"]
    assert policy["ingress"][1]["ports"] == [{"port": 9400, "protocol": "TCP"}]
    assert [p["port"] for rule in policy["egress"] for p in rule.get("ports", [])] == [53, 53], "no push, no egress"
    with pytest.raises(ChartError, match=r"exporter\.pushgateway: required .* unless monitoring\.podMonitor\.enabled"):
        render_manifests(PROD, [], ["exporter.pushgateway="], "x", "ml")
