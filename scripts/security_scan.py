#!/usr/bin/env python3
"""checkov over what the cluster would run: every chart scenario as `atft render` prints it, and k8s/.

    python3 scripts/security_scan.py [--out DIR] [--report FILE] [--extra FILE...]

Exit 0 when checkov finds no failed check, 1 when it does (the failures are listed on stderr), 2 when the scan
could not run. checkov runs offline (``--skip-download``) from ``.tools/scan-venv`` (pinned there by
``scripts/image/install-scanners.sh``) or ``$CHECKOV``.

What is scanned, one YAML file each under ``--out``:

* ``chart-<scenario>.yaml``: each ``helm/atft/ci/*-values.yaml`` rendered by ``render_manifests`` (namespace
  ``atft``), the config ``configs/prod-20ep.yaml``;
* ``k8s-<overlay>.yaml``: ``kubectl kustomize k8s/overlays/<overlay>`` (namespace, RBAC, retrain CronJob, the
  committed render), and ``k8s/argocd/*.yaml``, ``k8s/flux/*.yaml`` as they are;
* ``*.pods.yaml``: why these exist: checkov knows no CRD, so a PyTorchJob or a TrainingRuntime would pass
  unchecked. Each PyTorchJob replica's and each TrainingRuntime replicated job's pod template is written again
  as a core ``Pod`` (what the operator creates from it), annotated with the skips of
  ``scripts/checkov-skips.yaml`` (each with its reason) and with nothing else: the ``training-pod`` section
  always, ``image-by-tag`` only when a container's image is not pinned by digest. A TrainJob on upstream's
  runtime holds no pod template of the chart's (its patch is checked by tests/chart).

The chart's report Job (a core Job, scanned as it is) gets the ``report-job`` section and, by the same rule,
``image-by-tag`` as annotations in the scanned copy; the chart itself renders no checkov annotation.

``--extra FILE`` adds a manifest file (its PyTorchJobs and TrainingRuntimes expanded the same way): the test that
proves the scan fails on an insecure pod uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "cli")]  # run from a checkout without installing

from atft_cli.render import CHART_DIR, render_manifests, to_text  # noqa: E402

SKIPS = ROOT / "scripts" / "checkov-skips.yaml"
CHECKOV = ROOT / ".tools" / "scan-venv" / "bin" / "checkov"
INSTALL = "scripts/image/install-scanners.sh"
SCENARIO_CONFIG = ROOT / "configs" / "prod-20ep.yaml"
NAMESPACE = "atft"


def collect(out: Path, extra: list[Path]) -> list[Path]:
    """Write every manifest to scan into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for values in sorted((CHART_DIR / "ci").glob("*-values.yaml")):
        scenario = values.name.removesuffix("-values.yaml")
        objs = render_manifests(SCENARIO_CONFIG, [values], [], f"atft-{scenario}", NAMESPACE)
        written += _write(out / f"chart-{scenario}.yaml", objs)
    for overlay in sorted(p for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir()):
        proc = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"error: kubectl kustomize {overlay.relative_to(ROOT)}: {proc.stderr.strip()}")
        written += _write(out / f"k8s-{overlay.name}.yaml", list(yaml.safe_load_all(proc.stdout)))
    for path in sorted([*(ROOT / "k8s" / "argocd").glob("*.yaml"), *(ROOT / "k8s" / "flux").glob("*.yaml")]):
        written += _write(out / f"k8s-{path.parent.name}-{path.name}", list(yaml.safe_load_all(path.read_text())))
    for path in extra:
        written += _write(out / f"extra-{path.name}", list(yaml.safe_load_all(path.read_text())))
    return written


def training_pods(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each PyTorchJob replica's and TrainingRuntime replicated job's pod template as a ``Pod`` named
    ``<object>-<replica>``, with the skips of ``scripts/checkov-skips.yaml`` that apply to it (``image-by-tag``
    only while an image lacks a digest)."""
    pods = []
    for obj in objs:
        for replica, template in _crd_pod_templates(obj):
            meta = dict(template.get("metadata") or {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **_skips("training-pod", template["spec"])}
            meta.update(name=f"{obj['metadata']['name']}-{replica.lower()}", namespace=obj["metadata"]["namespace"])
            pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
    return pods


def with_report_skips(obj: dict[str, Any]) -> dict[str, Any]:
    """The chart's report Job with its skips as annotations (checkov reads them there); any other object as it is."""
    labels = obj.get("metadata", {}).get("labels") or {}
    if obj.get("kind") != "Job" or labels.get("app.kubernetes.io/component") != "report":
        return obj
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), **_skips("report-job", obj["spec"]["template"]["spec"])}
    return {**obj, "metadata": meta}


def _crd_pod_templates(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(replica, pod template) of the kinds checkov cannot read: a PyTorchJob's replicas, a TrainingRuntime's jobs."""
    if obj.get("kind") == "PyTorchJob":
        return [(replica, spec["template"]) for replica, spec in obj["spec"]["pytorchReplicaSpecs"].items()]
    if obj.get("kind") == "TrainingRuntime":
        jobs = obj["spec"]["template"]["spec"]["replicatedJobs"]
        return [(job["name"], job["template"]["spec"]["template"]) for job in jobs]
    return []


def _skips(section: str, pod: dict[str, Any]) -> dict[str, str]:
    """``checkov.io/skipN: ID=reason`` of ``section``, and of ``image-by-tag`` while an image of ``pod`` has no
    digest."""
    listed = yaml.safe_load(SKIPS.read_text())
    images = [c["image"] for c in [*pod.get("initContainers", []), *pod["containers"]]]
    sections = [section] + (["image-by-tag"] if any("@sha256:" not in i for i in images) else [])
    skips = {check: reason for name in sections for check, reason in listed[name].items()}
    return {f"checkov.io/skip{i}": f"{check}={why}" for i, (check, why) in enumerate(skips.items(), 1)}


def scan(directory: Path, checkov: Path) -> dict[str, Any]:
    """checkov's JSON report for ``directory`` (kubernetes framework, offline)."""
    cmd = [str(checkov), "--directory", str(directory), "--framework", "kubernetes", "--skip-download", "--output",
           "json", "--compact"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SystemExit(f"error: checkov failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    if (errors := sum(r["summary"]["parsing_errors"] for r in reports)) or not reports[0]["summary"]["passed"]:
        raise SystemExit(f"error: checkov parsed nothing usable in {directory} ({errors} parsing errors)")
    return reports[0]


def find_checkov() -> Path:
    path = Path(os.environ.get("CHECKOV") or CHECKOV)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise SystemExit(f"error: checkov not found at {path}; run {INSTALL} (or set CHECKOV=/path/to/checkov)")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where the scanned manifests go (default: a temporary folder)")
    parser.add_argument("--report", type=Path, help="write checkov's JSON report here")
    parser.add_argument("--extra", type=Path, action="append", default=[], help="another manifest file to scan")
    args = parser.parse_args(argv)
    checkov = find_checkov()
    out = args.out or Path(tempfile.mkdtemp(prefix="atft-scan-"))
    try:
        files = collect(out, args.extra)
        report = scan(out, checkov)
    finally:
        if args.out is None:
            shutil.rmtree(out)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, sort_keys=True))
    summary = report["summary"]
    for check in report["results"].get("failed_checks", []):
        print(f"FAILED {check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}",
              file=sys.stderr)  # fmt: skip
    print(
        f"checkov {summary['checkov_version']}: {len(files)} files, {summary['resource_count']} objects; "
        f"passed {summary['passed']}, failed {summary['failed']}, skipped {summary['skipped']}",
        file=sys.stderr,
    )
    return 1 if summary["failed"] else 0


def _write(path: Path, objs: list[dict[str, Any]]) -> list[Path]:
    objs = [with_report_skips(o) for o in objs if o]
    path.write_text(to_text(objs))
    if not (pods := training_pods(objs)):
        return [path]
    pods_path = path.with_suffix(".pods.yaml")
    pods_path.write_text(to_text(pods))
    return [path, pods_path]


if __name__ == "__main__":
    sys.exit(main())
