"""The second target (a Kubeflow Trainer v2 TrainJob) and the chart side of a cluster validation (fold jobs and
the report Job), on the YAML the real Helm renders. The CRD and core-schema checks of every scenario are in
test_scenarios.py; the security of every pod of every target in test_switches.py."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from chart_helpers import PROD, Objects, containers, job, one, pod_specs, pod_templates, runtime_patch
from k8s_schemas import crd_errors

from atft.validate.plan import FoldRun
from atft_cli.render import CHART_DIR, ChartError, render_manifests

pytestmark = pytest.mark.integration
Render = Callable[..., Objects]
UPSTREAM = ("target=trainjob", "exporter.enabled=false")  # upstream's runtime: no sidecar possible
OWN = ("target=trainjob", "trainjob.runtime.create=true")  # the chart's TrainingRuntime
FOLD = ("validation.id=wf-2024", "validation.fold=3", "validation.seed=1")
REPORT = ("validation.id=wf-2024", "validation.report=true")
REPORT_SETS = (*REPORT, "validation.seeds=0\\,1", "scheduling.kueueQueue=cpu-queue")


def kinds(objs: Objects) -> list[str]:
    return [o["kind"] for o in objs]


def node_pod(objs: Objects) -> dict[str, Any]:
    """The pod spec of the chart's TrainingRuntime's node job."""
    (rjob,) = one(objs, "TrainingRuntime")["spec"]["template"]["spec"]["replicatedJobs"]
    spec: dict[str, Any] = rjob["template"]["spec"]["template"]["spec"]
    return spec


def training_args(objs: Objects) -> list[str]:
    """The training container's arguments, whatever the target."""
    if "TrainJob" in kinds(objs):
        return list(one(objs, "TrainJob")["spec"]["trainer"]["args"])
    return list(containers(dict(pod_specs(objs))["Master"])["pytorch"]["args"])


def fails(sets: tuple[str, ...], match: str) -> None:
    with pytest.raises(ChartError, match=match):
        render_manifests(PROD, [], list(sets), "x", "ml")


def test_pytorchjob_is_the_default_and_trainjob_replaces_it_last_in_apply_order(render: Render) -> None:
    assert kinds(render())[-1] == "PyTorchJob" and "TrainJob" not in kinds(render())
    upstream = kinds(render(*UPSTREAM))
    assert upstream[-1] == "TrainJob" and not {"PyTorchJob", "TrainingRuntime"} & set(upstream)
    own = kinds(render(*OWN))
    assert own[-1] == "TrainJob" and own.index("ConfigMap") < own.index("TrainingRuntime") < own.index("TrainJob")
    assert "PyTorchJob" not in own
    with pytest.raises(ChartError, match=r"target: value must be one of 'pytorchjob', 'trainjob'"):
        render_manifests(PROD, [], ["target=TrainJob"], "x", "ml")


def test_runtime_ref_upstream_by_default_and_the_charts_own_when_created(render: Render) -> None:
    ref = one(render(*UPSTREAM), "TrainJob")["spec"]["runtimeRef"]
    assert ref == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime", "name": "torch-distributed"}
    named = render(*UPSTREAM, "trainjob.runtime.kind=TrainingRuntime", "trainjob.runtime.name=torch-nccl")
    ref = one(named, "TrainJob")["spec"]["runtimeRef"]
    assert (ref["kind"], ref["name"]) == ("TrainingRuntime", "torch-nccl")
    objs = render(*OWN, "trainjob.runtime.name=ignored", name="run-5", namespace="team")
    runtime = one(objs, "TrainingRuntime")
    assert runtime["metadata"] == {**runtime["metadata"], "name": "run-5", "namespace": "team"}
    ref = one(objs, "TrainJob")["spec"]["runtimeRef"]
    assert ref == {"apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime", "name": "run-5"}
    assert "runtimePatches" not in one(objs, "TrainJob")["spec"], "the chart's runtime already has the whole pod"


@pytest.mark.parametrize(
    ("sets", "nodes", "procs", "command"),
    [
        (("gpusPerPod=8", "workers=1"), 2, 8, ["python", "-m", "atft.train.torchrun"]),
        (("gpusPerPod=1",), 1, 1, None),
        (("gpusPerPod=0", "workers=3", "data.source=none"), 4, 1, ["python", "-m", "atft.train.torchrun"]),
    ],
)
def test_nodes_processes_and_resources_map_onto_the_trainer(
    render: Render, sets: tuple[str, ...], nodes: int, procs: int, command: list[str] | None
) -> None:
    for base in (UPSTREAM, OWN):
        objs = render(*base, *sets)
        trainer = one(objs, "TrainJob")["spec"]["trainer"]
        assert (trainer["numNodes"], trainer["numProcPerNode"], trainer.get("command")) == (nodes, procs, command)
        gpus = trainer["resourcesPerNode"]["limits"].get("nvidia.com/gpu")
        assert gpus == (procs if "gpusPerPod=0" not in sets else None)
        assert trainer["resourcesPerNode"]["requests"].get("nvidia.com/gpu") == gpus
    assert one(render(*OWN, *sets), "TrainingRuntime")["spec"]["mlPolicy"] == {"numNodes": nodes, "torch": {}}


def test_trainer_runs_what_the_pytorchjob_runs(render: Render) -> None:
    """Image, command, arguments, environment and resources: one training container, two targets."""
    sets = ("gpusPerPod=8", "workers=1", "dataFile=panel.parquet", "env.NCCL_DEBUG=INFO", "image.tag=1.2.3")
    pytorch = containers(dict(pod_specs(render(*sets)))["Worker"])["pytorch"]
    for base in (UPSTREAM, OWN):
        trainer = one(render(*base, *sets), "TrainJob")["spec"]["trainer"]
        assert trainer["image"] == pytorch["image"] == "ghcr.io/atft/atft:1.2.3"
        assert trainer["command"] == pytorch["command"] and trainer["args"] == pytorch["args"]
        assert trainer["env"] == pytorch["env"] and trainer["resourcesPerNode"] == pytorch["resources"]
    node = containers(node_pod(render(*OWN, *sets)))["node"]
    assert {k: node[k] for k in ("image", "command", "args", "env", "resources")} == {
        k: pytorch[k] for k in ("image", "command", "args", "env", "resources")
    }


def test_upstream_runtime_is_patched_with_labels_volumes_security_and_placement(render: Render) -> None:
    toleration = ("scheduling.tolerations[0].key=pool", "scheduling.tolerations[0].operator=Exists")
    objs = render(*UPSTREAM, *toleration, "imagePullSecrets[0].name=reg", name="up-1")
    trainjob = one(objs, "TrainJob")
    (patch,) = trainjob["spec"]["runtimePatches"]
    assert patch["manager"] == "atft.dev/chart"
    pod = runtime_patch(trainjob)
    policy = one(objs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= pod["metadata"]["labels"].items(), "the NetworkPolicy must select upstream's pods"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "node"
    spec = pod["spec"]
    assert [v["name"] for v in spec["volumes"]] == ["config", "data", "runs", "dshm", "scratch"]
    assert spec["serviceAccountName"] == one(objs, "ServiceAccount")["metadata"]["name"] == "up-1"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert [t["key"] for t in spec["tolerations"]] == ["nvidia.com/gpu", "pool"]
    assert spec["imagePullSecrets"] == [{"name": "reg"}] and spec["terminationGracePeriodSeconds"] == 90
    (node,) = spec["containers"]
    assert set(node) == {"name", "securityContext", "volumeMounts"} and node["name"] == "node"
    assert [m["mountPath"] for m in node["volumeMounts"]] == ["/etc/atft", "/data", "/runs", "/dev/shm", "/tmp"]


def test_upstream_runtime_refuses_what_a_patch_cannot_carry(render: Render, crd_validators: dict) -> None:
    """The exporter sidecar would be a container with an image, which a runtime patch may not add (the CRD
    proves it below), so the chart says how to get it instead of rendering a job without it."""
    fails(
        ("target=trainjob",),
        r"exporter\.enabled: a TrainJob cannot add the exporter sidecar to the upstream runtime's pods; "
        r"set trainjob\.runtime\.create=true .*, or exporter\.enabled=false",
    )
    fails((*UPSTREAM, "scheduling.priorityClassName=high"), r"scheduling\.priorityClassName: .*runtime\.create=true")
    fails((*UPSTREAM, "scheduling.schedulerName=volcano"), r"scheduling\.schedulerName: .*or leave it empty")
    fails((*OWN, "workers=1", "elastic.enabled=true"), r"elastic\.enabled: a TrainJob has no elastic mode")
    trainjob = copy.deepcopy(one(render(*UPSTREAM), "TrainJob"))
    node = runtime_patch(trainjob)["spec"]["containers"][0]
    node["image"] = "ghcr.io/atft/atft:0.1.0"
    assert any("'image' was unexpected" in e for e in crd_errors(trainjob, crd_validators))
    objs = render(*OWN, "scheduling.priorityClassName=high", "scheduling.schedulerName=volcano")
    assert node_pod(objs)["priorityClassName"] == "high" and node_pod(objs)["schedulerName"] == "volcano"


def test_charts_runtime_runs_the_exporter_in_every_node_and_only_index_0_pushes(render: Render) -> None:
    from atft_cli.main import app

    pod = node_pod(render(*OWN, "workers=1", name="tj"))
    sidecar = containers(pod)["exporter"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"] if "valueFrom" in e}
    assert env == {
        "REPLICA_INDEX": "metadata.labels['batch.kubernetes.io/job-completion-index']",
        "REPLICA_TYPE": "metadata.labels['jobset.sigs.k8s.io/replicatedjob-name']",
    }
    # the kubelet expands $(REPLICA_INDEX) before the exporter parses it: node 1's sidecar gets "1"
    args = [a.replace("$(REPLICA_INDEX)", "1").replace("$(REPLICA_TYPE)", "node") for a in sidecar["args"]]
    root = typer.main.get_group(app)
    with root.make_context("atft", ["exporter"]) as ctx:
        command = root.get_command(ctx, "exporter")
        assert command is not None
        parsed = command.make_context("exporter", args, parent=ctx).params
    assert parsed["replica_index"] == 1 and parsed["exit_on_end"] is False
    assert str(parsed["events"]) == "/runs/tj/events.jsonl"
    assert "replica_type=node" in parsed["grouping"] and "replica_index=1" in parsed["grouping"]
    master = containers(dict(pod_specs(render("workers=1")))["Master"])["exporter"]
    assert "--replica-index" not in master["args"], "a PyTorchJob has its exporter on the Master alone"


def test_charts_runtime_keeps_the_pytorchjobs_restart_rule(render: Render) -> None:
    """Exit codes 1-127 fail the job at once; anything else (143 after a preemption) re-creates the JobSet, up to
    runPolicy.backoffLimit times."""
    runtime = one(render(*OWN, "runPolicy.backoffLimit=5"), "TrainingRuntime")["spec"]["template"]["spec"]
    assert runtime["failurePolicy"] == {
        "maxRestarts": 5,
        "rules": [{"name": "permanentExitCode", "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy"]}],
    }
    (rjob,) = runtime["replicatedJobs"]
    assert rjob["template"]["spec"]["backoffLimit"] == 0
    (rule,) = rjob["template"]["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"] == {"containerName": "node", "operator": "In", "values": list(range(1, 128))}
    assert rjob["template"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_trainjob_kueue_label_and_deadline(render: Render) -> None:
    trainjob = one(render(*UPSTREAM, "scheduling.kueueQueue=a100-queue"), "TrainJob")
    assert trainjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "a100-queue"
    assert trainjob["spec"]["activeDeadlineSeconds"] == 172800
    plain = one(render(*UPSTREAM, "runPolicy.activeDeadlineSeconds=0"), "TrainJob")
    assert "activeDeadlineSeconds" not in plain["spec"]
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]


def test_scrape_mode_of_a_trainjob_selects_node_0(render: Render) -> None:
    objs = render(*OWN, "monitoring.podMonitor.enabled=true")
    selector = one(objs, "PodMonitor")["spec"]["selector"]["matchLabels"]
    assert selector["batch.kubernetes.io/job-completion-index"] == "0"
    assert "training.kubeflow.org/replica-type" not in selector


@pytest.mark.parametrize("target", [(), UPSTREAM, OWN], ids=["pytorchjob", "trainjob-upstream", "trainjob-own"])
def test_fold_job_labels_arguments_and_run_dir(render: Render, target: tuple[str, ...]) -> None:
    objs = render(*target, *FOLD, "workers=1")
    run = FoldRun(fold=3, label="", seed=1, test_first="", test_last="")  # how `atft validate` names and sets it
    run_dir = f"/runs/wf-2024/runs/{run.name}"
    assert run_dir == "/runs/wf-2024/runs/fold-03-seed-1"
    labels = {"atft.dev/validation-id": "wf-2024", "atft.dev/fold": "3", "atft.dev/seed": "1"}
    the_job = job(objs)
    assert labels.items() <= the_job["metadata"]["labels"].items()
    assert the_job["metadata"]["annotations"]["atft.dev/run-dir"] == run_dir
    templates = list(pod_templates(objs))
    for where, template in templates:
        assert labels.items() <= template["metadata"]["labels"].items(), where
        if sidecar := containers(template["spec"]).get("exporter"):
            assert sidecar["args"][:2] == ["--events", f"{run_dir}/events.jsonl"], where
    assert templates, "no pod template checked"
    args = training_args(objs)
    start = args.index("--config")
    assert args[start : start + 6] == ["--config", "/etc/atft/config.yaml", "--set", "split.fold=3", "--set", "seed=1"]
    assert args[start + 3 : start + 6 : 2] == run.overrides()
    assert args[args.index("--out") + 1] == run_dir


def test_fold_arguments_are_what_the_training_module_accepts(render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m atft.train` (the image's entrypoint) parses the fold job's arguments, and the overrides are keys
    of the config: the run it starts trains fold 3 with seed 1 into the fold's run directory."""
    import atft.train.__main__ as train_main

    seen: dict[str, Any] = {}

    def run_training(cfg: Any, out: str, data: str | None, overwrite: bool, **kwargs: Any) -> tuple[None, None]:
        seen.update(cfg=cfg, out=out, data=data, resume=kwargs["resume"])
        return None, None

    monkeypatch.setattr(train_main, "run_training", run_training)
    args = [str(PROD) if a == "/etc/atft/config.yaml" else a for a in training_args(render(*FOLD))]
    assert train_main.main(args) == 0
    assert (seen["cfg"].split.fold, seen["cfg"].seed) == (3, 1)
    assert (seen["out"], seen["resume"]) == ("/runs/wf-2024/runs/fold-03-seed-1", "auto")


def test_validation_values_need_an_id() -> None:
    needs_id = r"validation\.report, validation\.fold and validation\.seed: only mean something with validation\.id"
    fails(("validation.fold=2",), needs_id)
    fails(("validation.report=true",), r"set validation\.id to the validation's id")


@pytest.mark.parametrize("target", [(), ("target=trainjob",)], ids=["pytorchjob", "trainjob"])
def test_report_job_replaces_the_training_job(render: Render, target: tuple[str, ...]) -> None:
    """The same report Job whichever target trained the folds (target=trainjob's exporter rule does not apply)."""
    objs = render(*target, *REPORT_SETS, name="wf-report")
    assert kinds(objs)[-1] == "Job" and not {"PyTorchJob", "TrainJob", "TrainingRuntime"} & set(kinds(objs))
    report = one(objs, "Job")
    assert report == one(render(*REPORT_SETS, name="wf-report"), "Job")
    assert report["metadata"]["name"] == "wf-report" and report["spec"]["backoffLimit"] == 1
    labels = report["metadata"]["labels"]
    assert labels["atft.dev/validation-id"] == "wf-2024" and labels["app.kubernetes.io/component"] == "report"
    assert labels["kueue.x-k8s.io/queue-name"] == "cpu-queue"
    pod = report["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["atft", "validate"]
    assert c["args"][:4] == ["--config", "/etc/atft/config.yaml", "--out", "/runs/wf-2024"]
    assert c["args"][4:] == ["--seeds", "0,1", "--report-only"]
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    assert "nodeSelector" not in pod and "tolerations" not in pod, "no GPU: no GPU node label, no GPU toleration"
    assert [v["name"] for v in pod["volumes"]] == ["config", "data", "runs", "scratch"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert "readOnly" not in mounts["runs"] and mounts["data"]["readOnly"], "the report is written to the run volume"


def test_report_job_command_parses_with_the_real_validate_command(render: Render) -> None:
    """Every flag the report Job gives `atft validate` is one it accepts (parsed, not run)."""
    from atft_cli.main import app

    (c,) = one(render(*REPORT_SETS, "dataFile=panel.parquet"), "Job")["spec"]["template"]["spec"]["containers"]
    root = typer.main.get_group(app)
    with root.make_context("atft", [c["command"][1]]) as ctx:
        command = root.get_command(ctx, c["command"][1])
        assert command is not None
        parsed = command.make_context(c["command"][1], list(c["args"]), parent=ctx).params
    assert parsed["report_only"] is True and parsed["seeds"] == "0,1"
    assert (str(parsed["out"]), str(parsed["data"])) == ("/runs/wf-2024", "/data/panel.parquet")
    assert str(parsed["config"]) == "/etc/atft/config.yaml"


def test_report_job_reads_the_panel_file_and_runs_without_a_data_volume(render: Render) -> None:
    (c,) = one(render(*REPORT, "dataFile=panel.parquet"), "Job")["spec"]["template"]["spec"]["containers"]
    assert c["args"][-2:] == ["--data", "/data/panel.parquet"]
    no_data = one(render(*REPORT, "data.source=none", "scheduling.nodeSelector.pool=cpu"), "Job")
    pod = no_data["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["config", "runs", "scratch"]
    assert pod["nodeSelector"] == {"pool": "cpu"}
    sized = one(render(*REPORT, "validation.reportResources.limits.memory=32Gi"), "Job")
    assert sized["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "32Gi"}


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (UPSTREAM, ["TrainJob research/prod-a on ClusterTrainingRuntime torch-distributed: 1 node(s)"]),
        (OWN, ["TrainJob research/prod-a on TrainingRuntime prod-a (the chart's)", "the JobSet is re-created"]),
        ((*OWN, *FOLD), ["/runs/wf-2024/runs/fold-03-seed-1", "atft status --validation wf-2024 -n research"]),
    ],
    ids=["upstream", "own", "fold"],
)
def test_notes_of_a_trainjob_pass_the_target(helm: Path, sets: tuple[str, ...], expected: list[str]) -> None:
    args = ["--set-file", f"config={PROD}", "--dry-run=client", *[a for s in sets for a in ("--set", s)]]
    done = subprocess.run(
        [str(helm), "install", "prod-a", str(CHART_DIR), "-n", "research", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    for command in ("atft status", "atft logs", "atft wait", "atft delete"):
        line = next(line for line in notes.splitlines() if f"{command} prod-a -n research" in line)
        assert line.endswith("--target trainjob") or "--target trainjob " in line, line
    for text in expected:
        assert text in notes
