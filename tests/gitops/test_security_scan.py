"""checkov (offline, the pinned release) over every chart scenario and k8s/: clean, every skip with its reason,
and a deliberately insecure pod makes the same scan fail.

The scan runs as CI runs it (``scripts/security_scan.py``, a real process, real checkov); twice in all, since
checkov takes seconds: once over the project, once with the insecure manifest added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops_helpers import OVERLAYS, atft

from atft_cli.render import CHART_DIR, REPO_ROOT, render_manifests, to_text

pytestmark = pytest.mark.integration

SCRIPT = REPO_ROOT / "scripts" / "security_scan.py"
SKIPS = yaml.safe_load((REPO_ROOT / "scripts" / "checkov-skips.yaml").read_text())
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART_DIR / "ci").glob("*-values.yaml"))
CHECKOV = Path(os.environ.get("CHECKOV") or REPO_ROOT / ".tools" / "scan-venv" / "bin" / "checkov")


def run_scan(tmp: Path, *extra: Path) -> tuple[int, dict[str, Any], str]:
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV}: missing; run scripts/image/install-scanners.sh (make tools does)")
    report = tmp / "report.json"
    cmd = [sys.executable, str(SCRIPT), "--out", str(tmp / "scanned"), "--report", str(report)]
    for path in extra:
        cmd += ["--extra", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CHECKOV": str(CHECKOV)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=600)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(report.read_text()), done.stderr


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str]:
    return run_scan(tmp_path_factory.mktemp("scan"))


def test_project_scan_is_clean_and_covers_every_scenario_and_overlay(clean: tuple[int, dict[str, Any], str]) -> None:
    code, report, stderr = clean
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert code == 0 and failed == [], stderr
    assert report["summary"]["parsing_errors"] == 0
    resources = {c["resource"] for c in report["results"]["passed_checks"]}
    # each scenario's pods were scanned: a CRD's as Pods, the report Job as it is; a TrainJob on upstream's
    # runtime holds no pod template of the chart's (tests/chart checks its patch)
    pods = {
        "trainjob-runtime": "Pod.atft.atft-trainjob-runtime-node",
        "validation-report": "Job.atft.atft-validation-report",
    }
    for scenario in set(SCENARIOS) - {"trainjob-upstream"}:
        assert pods.get(scenario, f"Pod.atft.atft-{scenario}-master") in resources
    for overlay in OVERLAYS:
        cronjob = "atft-walk-forward" if overlay == "trainer" else "atft-retrain"
        assert f"CronJob.atft-{overlay}.{cronjob}" in resources
        assert any(r.startswith(f"Pod.atft-{overlay}.atft-{overlay}-") for r in resources)
        assert f"Role.atft-{overlay}.atft-retrain" in resources
    # The prod overlay pins its image by digest: checkov's digest check runs on it, unskipped, and passes.
    digest_ok = {c["resource"] for c in report["results"]["passed_checks"] if c["check_id"] == "CKV_K8S_43"}
    assert "CronJob.atft-prod.atft-retrain" in digest_ok
    assert {r for r in resources if r.startswith("Pod.atft-prod.")} <= digest_ok
    assert any(r.startswith("Pod.atft-prod.") for r in digest_ok)


def test_every_skip_has_its_reason_and_is_still_needed(clean: tuple[int, dict[str, Any], str]) -> None:
    _, report, _ = clean
    skipped = report["results"]["skipped_checks"]
    assert skipped, "the scenarios need the listed skips"
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 8, f"{check['check_id']} on {check['resource']}: skipped without a reason"
    listed = {check for section in SKIPS.values() for check in section}
    cronjobs = [
        REPO_ROOT / "k8s" / "base" / "cronjob.yaml",
        REPO_ROOT / "k8s" / "components" / "walk-forward" / "cronjob.yaml",
    ]
    inline = {
        v.split("=")[0]
        for path in cronjobs
        for k, v in yaml.safe_load(path.read_text())["metadata"]["annotations"].items()
        if k.startswith("checkov.io/skip")
    }
    assert {c["check_id"] for c in skipped} == listed | inline, "a listed skip no longer matches a finding: drop it"
    # The skip list touches training pods and the report Job only: nothing else in the scan is skipped.
    assert {c["resource"].split(".")[0] for c in skipped} == {"Pod", "CronJob", "Job"}


def test_insecure_pod_fails_the_scan(tmp_path: Path) -> None:
    """Root, privileged, escalation allowed: the chart's schema refuses such values (exit 2), so the rendered
    job is patched the way a careless hand edit would, and the same scan must fail on exactly those findings."""
    refused = tmp_path / "root-values.yaml"
    refused.write_text("securityContext:\n  runAsUser: 0\n")
    done = atft("render", "-f", str(refused), "-n", "atft")
    assert done.returncode == 2 and "securityContext.runAsUser" in done.stderr, done.stderr

    objs = render_manifests(
        REPO_ROOT / "configs" / "debug.yaml", [CHART_DIR / "ci" / "cpu-smoke-values.yaml"], [], "insecure", "atft"
    )
    pod = next(o for o in objs if o["kind"] == "PyTorchJob")["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    pod["spec"]["securityContext"].update(runAsUser=0, runAsNonRoot=False)
    trainer = next(c for c in pod["spec"]["containers"] if c["name"] == "pytorch")
    trainer["securityContext"].update(privileged=True, allowPrivilegeEscalation=True, runAsUser=0, runAsNonRoot=False)
    insecure = tmp_path / "insecure.yaml"
    insecure.write_text(to_text(objs))
    code, report, stderr = run_scan(tmp_path, insecure)
    assert code == 1, stderr
    failed: dict[str, set[str]] = {}
    for check in report["results"]["failed_checks"]:
        failed.setdefault(check["resource"], set()).add(check["check_id"])
    assert set(failed) == {"Pod.atft.insecure-master"}, "only the patched pod fails"
    # privileged, privilege escalation, root containers, root UID
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_23", "CKV_K8S_40"} <= failed["Pod.atft.insecure-master"]
    assert "FAILED CKV_K8S_16 Pod.atft.insecure-master" in stderr
