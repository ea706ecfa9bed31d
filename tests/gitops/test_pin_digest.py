"""scripts/image/pin_digest.py: the release step that pins the prod overlay to one image by digest.

It runs as a process on a copy of k8s/overlays/prod: the two files that carry the reference (values.yaml for the
training pods, kustomization.yaml for the retrain CronJob) get the same repository and digest, nothing else in
them changes, and a reference that is not REPOSITORY@sha256:<64 hex> is refused with exit 2 and no file touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gitops_helpers import K8S

from atft_cli.render import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "image" / "pin_digest.py"
NEW = "registry.example.com:5000/ml/atft@sha256:" + "ab12" * 16


def pin(overlay: Path, image: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), image, "--overlay", str(overlay)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    copy = tmp_path / "prod"
    shutil.copytree(K8S / "overlays" / "prod", copy)
    return copy


def test_committed_prod_overlay_pins_one_reference_in_both_places() -> None:
    values = yaml.safe_load((K8S / "overlays" / "prod" / "values.yaml").read_text())["image"]
    (entry,) = yaml.safe_load((K8S / "overlays" / "prod" / "kustomization.yaml").read_text())["images"]
    assert (entry["newName"], entry["digest"]) == (values["repository"], values["digest"])
    assert "tag" not in values, "a digest makes the chart ignore the tag: a tag here would only mislead"


def test_pin_rewrites_both_files_and_nothing_else(overlay: Path) -> None:
    before = {p.name: p.read_text() for p in overlay.iterdir()}
    done = pin(overlay, NEW)
    assert done.returncode == 0, done.stderr
    repo, digest = NEW.split("@")
    values = yaml.safe_load((overlay / "values.yaml").read_text())
    assert values["image"] == {"repository": repo, "digest": digest}
    assert {k: v for k, v in values.items() if k != "image"} == {
        k: v for k, v in yaml.safe_load(before["values.yaml"]).items() if k != "image"
    }
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "ghcr.io/atft/atft", "newName": repo, "digest": digest}]
    changed_lines = {
        name: [
            a
            for a, b in zip(before[name].splitlines(), (overlay / name).read_text().splitlines(), strict=True)
            if a != b
        ]
        for name in before
    }
    assert {name: len(lines) for name, lines in changed_lines.items() if lines} == {
        "values.yaml": 2,
        "kustomization.yaml": 2,
    }, "only the repository and digest lines change; comments stay"
    again = pin(overlay, NEW)
    assert again.returncode == 0 and "already pins" in again.stderr


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/you/atft:1.2.3",  # a tag can move
        "ghcr.io/you/atft@sha256:" + "a" * 63,  # short digest
        "ghcr.io/you/atft@sha256:" + "A" * 64,  # uppercase hex
        "ghcr.io/you/atft:1.2.3@sha256:" + "a" * 64,  # tag and digest: which one runs is unclear
        "atft@sha256:" + "a" * 64,  # no registry path
    ],
)
def test_pin_refuses_anything_but_a_digest_reference_and_writes_nothing(overlay: Path, image: str) -> None:
    before = {p.name: p.read_text() for p in overlay.iterdir()}
    done = pin(overlay, image)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: image {image!r}: want REPOSITORY@sha256:") and "Traceback" not in done.stderr
    assert {p.name: p.read_text() for p in overlay.iterdir()} == before
