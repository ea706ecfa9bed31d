"""A walk-forward validation on a cluster: ``atft submit --validate`` renders and creates one job per fold and seed
through the real helm and clients; ``status`` / ``wait --validation`` follow them by their label; the report Job.
Against the fake API server (the recorded contract), for both targets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_fixtures import NS, TRAINER, atft, trainer_condition, trainjob, trainjob_status
from fake_api import FakeApiServer

from atft.errors import AtftError
from atft_cli.render import find_helm, managed_by, render_manifests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"  # split.n_folds: 2
TRAINJOB = ("--target", "trainjob", "--set", "trainjob.runtime.create=true", "--set", "scheduling.kueueQueue=gpu")
SELECTOR = {"labelSelector": "atft.dev/validation-id=wf"}


@pytest.fixture(scope="module", autouse=True)
def helm() -> Path:
    try:
        return find_helm()
    except AtftError as exc:
        pytest.fail(f"{exc}\nsubmit renders with helm: run `python3 scripts/fetch_helm.py` (CI does)")


def test_one_job_per_fold_and_seed_each_labelled_queued_and_training_its_fold(
    api: FakeApiServer, kubeconfig: Path, job_schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    args = ("submit", "--validate", "--config", DEBUG, "--seeds", "0,1", "--name", "wf", *TRAINJOB)
    result = atft(*args, "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    jobs = [r.body for r in api.calls("POST") if r.path.endswith("/trainjobs")]
    assert [j["metadata"]["name"] for j in jobs] == ["wf-f00-s0", "wf-f00-s1", "wf-f01-s0", "wf-f01-s1"]
    for job in jobs:
        labels = job["metadata"]["labels"]
        fold, seed = int(labels["atft.dev/fold"]), int(labels["atft.dev/seed"])
        assert labels["atft.dev/validation-id"] == "wf" and labels["kueue.x-k8s.io/queue-name"] == "gpu"
        trainer_args = job["spec"]["trainer"]["args"]
        assert f"split.fold={fold}" in trainer_args and f"seed={seed}" in trainer_args
        assert trainer_args[trainer_args.index("--out") + 1] == f"/runs/wf/runs/fold-{fold:02d}-seed-{seed}"
        assert job_schema_errors(job) == []
    # each fold's objects exactly as `atft render` gives them for that fold's values, in order, nothing dropped
    sets = ["trainjob.runtime.create=true", "scheduling.kueueQueue=gpu", "target=trainjob"]
    fold = ["validation.id=wf", "validation.fold=1", "validation.seed=0"]
    rendered = managed_by(render_manifests(DEBUG, [], [*sets, *fold], "wf-f01-s0", NS), "atft")
    instance = "app.kubernetes.io/instance"
    sent = [r.body for r in api.calls("POST") if r.body["metadata"]["labels"][instance] == "wf-f01-s0"]
    assert sent == rendered and [o["kind"] for o in sent][-2:] == ["TrainingRuntime", "TrainJob"]
    assert f"`atft status --validation wf --target trainjob -n {NS}`" in result.stderr


def test_the_fold_count_comes_from_the_config_or_folds_and_a_dry_run_calls_nothing(
    api: FakeApiServer, kubeconfig: Path
) -> None:
    dry = atft("submit", "--validate", "--folds", "3", "--name", "wf", "--dry-run", "--kubeconfig", kubeconfig)
    assert dry.returncode == 0, dry.stderr
    names = [o["metadata"]["name"] for o in yaml.safe_load_all(dry.stdout) if o and o["kind"] == "PyTorchJob"]
    assert names == ["wf-f00-s0", "wf-f01-s0", "wf-f02-s0"] and api.requests == []
    unknown = atft("submit", "--validate", "--name", "wf", "--dry-run", "--kubeconfig", kubeconfig)  # demo: null
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "split.n_folds is null" in unknown.stderr and "pass --folds N" in unknown.stderr
    alone = atft("submit", "--folds", "3", "--name", "wf", "--dry-run", "--kubeconfig", kubeconfig)
    assert alone.returncode == 2 and "go with --validate" in alone.stderr


def test_the_report_job_pools_the_validation_on_the_runs_volume(api: FakeApiServer, kubeconfig: Path) -> None:
    args = ("submit", "--validate", "--report-only", "--config", DEBUG, "--seeds", "0,1", "--name", "wf")
    result = atft(*args, "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    posts = api.calls("POST")
    # the report needs no alerts, dashboard or scrape objects: only its identity, policy, config and the Job
    assert [(r.path.rsplit("/", 1)[1], r.body["metadata"]["name"]) for r in posts] == [
        ("networkpolicies", "wf-report"), ("serviceaccounts", "wf-report"), ("configmaps", "wf-report-config"),
        ("jobs", "wf-report"),
    ]  # fmt: skip
    (container,) = posts[-1].body["spec"]["template"]["spec"]["containers"]
    command = [*container.get("command", []), *container.get("args", [])]
    assert command[command.index("--out") + 1] == "/runs/wf" and "--report-only" in command
    assert command[command.index("--seeds") + 1] == "0,1"


def _fold(name: str, fold: int, status: dict[str, Any]) -> dict[str, Any]:
    job = trainjob(name)
    job["metadata"]["labels"] |= {"atft.dev/validation-id": "wf", "atft.dev/fold": str(fold), "atft.dev/seed": "0"}
    return job | {"status": status}


def test_status_and_wait_follow_every_fold_by_the_validation_label(api: FakeApiServer, kubeconfig: Path) -> None:
    done = trainjob_status(trainer_condition("Complete"), succeeded=1)
    api.put(TRAINER, "trainjobs", _fold("wf-f01-s0", 1, done))
    api.put(TRAINER, "trainjobs", _fold("wf-f00-s0", 0, trainjob_status(active=1)))
    api.put(TRAINER, "trainjobs", trainjob("other") | {"status": done})  # another validation's: never shown
    shown = atft("status", "--validation", "wf", "--target", "trainjob", "-o", "json", "--kubeconfig", kubeconfig)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout) == [
        {"name": "wf-f00-s0", "fold": 0, "seed": 0, "state": "Running"},
        {"name": "wf-f01-s0", "fold": 1, "seed": 0, "state": "Succeeded"},
    ]
    assert [(r.method, r.path, r.query) for r in api.requests] == [
        ("GET", f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs", SELECTOR)
    ]
    late = atft("wait", "--validation", "wf", "--target", "trainjob", "--timeout", "1s", "--kubeconfig", kubeconfig)
    assert late.returncode == 3 and "1 Running, 1 Succeeded after 1s" in late.stderr
    failed = trainjob_status(trainer_condition("Failed", message="NCCL timeout"), failed=1)
    api.set_status(TRAINER, "trainjobs", NS, "wf-f00-s0", failed)
    ended = atft("wait", "--validation", "wf", "--target", "trainjob", "--kubeconfig", kubeconfig)
    assert ended.returncode == 1 and "1 of 2 fold jobs failed: wf-f00-s0" in ended.stderr
    assert f"`atft logs wf-f00-s0 --target trainjob -n {NS}`" in ended.stderr
    api.set_status(TRAINER, "trainjobs", NS, "wf-f00-s0", done)
    ok = atft("wait", "--validation", "wf", "--target", "trainjob", "--kubeconfig", kubeconfig)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{NS}/wf: 2 fold jobs Succeeded"
    neither = atft("wait", "--kubeconfig", kubeconfig)
    assert neither.returncode == 2 and "give a job NAME or --validation ID" in neither.stderr
