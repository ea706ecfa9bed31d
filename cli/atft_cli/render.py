"""The only producer of manifests: the chart ``helm/atft`` rendered by the real Helm engine, sorted and deterministic.

Why Helm and not our own templating: the same chart is what a platform team installs with ``helm`` or syncs
with Argo CD, so ``atft render`` / ``atft submit`` must produce exactly what Helm produces. This module runs
``helm template`` and post-processes its output only to make it deterministic: objects sorted (dependencies
first, the PyTorchJob last) and keys sorted, so the same inputs give byte-identical text.

One source of truth for the training config: the config file is validated with :func:`atft.config.load_config`
(a bad config fails the render with the config's own error, exit 2) and then passed to the chart verbatim with
``--set-file config=PATH``, so the ConfigMap the pod mounts is byte-for-byte the file a local run uses.

Library API (used by ``atft render``, ``atft submit`` and the GitOps drift check; keep it stable):

* :func:`render_manifests` -> ``list[dict]`` of Kubernetes objects;
* :func:`default_name` -> the job name used when none is given (``atft-<config stem>``);
* :func:`to_text` -> the text ``atft render`` prints (``yaml``: ``---``-separated documents; ``json``: a ``v1 List``);
* :func:`hashed_name` -> ``NAME-<hash of the manifests>`` (``--name-hash``), so a change gives a new job;
* :func:`drift` -> the unified diff between a committed render and a fresh one (``--check``).

The chart is the one shipped with the package (:mod:`atft_cli.resources`: package data of an installed wheel,
the repository's ``helm/atft`` in a checkout); ``$ATFT_CHART`` points at another chart directory instead.

Who manages the objects: Helm labels every object ``app.kubernetes.io/managed-by: Helm``, which is true for
``helm install`` and what ``atft render`` prints (it is ``helm template``'s output). ``atft submit`` creates the
objects itself, with no Helm release behind them, so it sends them relabelled by :func:`managed_by`
(``app.kubernetes.io/managed-by: atft``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from atft.errors import AtftError, InputFileError
from atft_cli.resources import SOURCE_ROOT, shipped_dir

REPO_ROOT = SOURCE_ROOT
CHART_ENV = "ATFT_CHART"
CHART_DIR = Path(os.environ[CHART_ENV]) if os.environ.get(CHART_ENV) else shipped_dir("chart")
DEFAULT_CONFIG = shipped_dir("configs") / "demo.yaml"
MANAGED_BY = "app.kubernetes.io/managed-by"
HELM_ENV = "ATFT_HELM"
FETCH_SCRIPT = "scripts/fetch_helm.py"
LOCAL_HELM = REPO_ROOT / ".tools" / "bin" / "helm"
MIN_HELM = (3, 14)
FORMATS = ("yaml", "json")
# Apply order: what a pod references exists before the pod's owner; the job itself last.
KIND_ORDER = (
    "NetworkPolicy",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "PrometheusRule",
    "ServiceMonitor",
    "PodMonitor",
    "TrainingRuntime",
    "Job",
    "PyTorchJob",
    "TrainJob",
)
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 52  # pods are <name>-worker-<index>; a label value and a pod hostname are at most 63 characters
HASH_CHARS = 8  # hex digits of the manifests' sha256 in a --name-hash name: 32 bits, per base name


class ToolMissingError(AtftError):
    """An external program atft needs (helm) is not installed or too old."""

    exit_code = 2


class InvalidNameError(AtftError):
    """The job name cannot be a PyTorchJob name."""

    exit_code = 2


class ChartError(AtftError):
    """The chart refused the values (schema violation, an invalid combination, a bad --set)."""

    exit_code = 2


class RenderDrift(AtftError):
    """A committed render differs from a fresh one: the chart, values or config changed without re-rendering."""

    exit_code = 1


def render_manifests(
    config: Path | None,
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    name: str = "atft",
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """Render the chart into Kubernetes objects, sorted for apply order.

    Args:
        config: the atft run config (default: the shipped ``configs/demo.yaml``); validated, then shipped
            verbatim in the ConfigMap.
        values: chart values files (``helm -f``), applied in order.
        sets: chart value overrides ``KEY=VALUE`` (``helm --set`` syntax), applied after ``values``.
        name: the release and PyTorchJob name (a DNS-1035 label of at most 52 characters); the run directory
            in the pod is ``/runs/<name>``.
        namespace: the namespace every object is rendered into.

    Raises:
        ConfigError: the config is invalid (every problem, each naming its dotted key).
        InvalidNameError: ``name`` is not a DNS-1035 label of at most 52 characters.
        InputFileError: the config or a values file does not exist.
        ChartError: Helm refused the values (a typo names the key; a bad combination says why).
        ToolMissingError: no usable helm binary.
    """
    config_path = Path(config) if config is not None else DEFAULT_CONFIG
    if not config_path.is_file():
        raise InputFileError(f"{config_path}: no such file")
    for path in values:
        if not Path(path).exists():  # exists, not is_file: `-f /dev/stdin` works as with helm
            raise InputFileError(f"{path}: no such file")
    _check_name(name)
    if not (CHART_DIR / "Chart.yaml").is_file():
        raise InputFileError(f"chart {CHART_DIR}: no Chart.yaml; set {CHART_ENV} to the chart's directory (helm/atft)")
    from atft.config import load_config

    load_config(config_path, [], environ={})  # the file alone is what the pod gets: no local env switches
    cmd = [str(find_helm()), "template", name, str(CHART_DIR), "--namespace", namespace]
    for path in values:
        cmd += ["--values", _csv_quoted(str(path))]
    for text in sets:
        if "=" not in text:
            raise ChartError(f"--set {text!r}: expected KEY=VALUE (chart values, Helm --set syntax)")
        cmd += ["--set", text]
    escaped = str(config_path).replace("\\", "\\\\").replace(",", "\\,")  # --set-file splits on commas
    cmd += ["--set-file", f"config={escaped}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sources = [f"-f {p}" for p in values] + [f"--set {t}" for t in sets]
        raise ChartError(_helm_message(proc.stderr, sources))
    objs = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    return sorted(objs, key=_sort_key)


def managed_by(objs: Sequence[dict[str, Any]], manager: str) -> list[dict[str, Any]]:
    """Copies of ``objs`` whose ``app.kubernetes.io/managed-by`` labels say ``manager``.

    Every ``labels`` map that carries the label is changed: each object's and each pod template's (the pods
    the operator creates). Selectors (``matchLabels``) never carry it, so what selects what is unchanged.
    """

    def relabel(node: Any) -> Any:
        if isinstance(node, list):
            return [relabel(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: relabel(value) for key, value in node.items()}
        labels = out.get("labels")
        if isinstance(labels, dict) and MANAGED_BY in labels:
            out["labels"] = {**labels, MANAGED_BY: manager}
        return out

    return [relabel(obj) for obj in objs]


def default_name(config: Path | None) -> str:
    """The job name when none is given: ``atft-<config stem>`` as a DNS-1035 label (``prod-20ep.yaml`` ->
    ``atft-prod-20ep``), so a job is recognisable by the config it runs."""
    stem = re.sub(r"[^a-z0-9]+", "-", (Path(config).stem if config is not None else DEFAULT_CONFIG.stem).lower())
    return f"atft-{stem.strip('-')}"[:MAX_NAME].rstrip("-")


def hashed_name(
    config: Path | None,
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    name: str = "atft",
    namespace: str = "default",
) -> str:
    """``NAME-<8 hex digits>``: the sha256 of the YAML ``atft render`` prints for ``NAME``.

    Why a hash of the output rather than of the inputs: anything that changes what the cluster would run (the
    config, a value, the chart, the namespace) changes the name, and nothing else does. A merged change thus
    creates a new PyTorchJob beside the old one instead of patching a running job (whose pods would not follow
    the new spec, while a GitOps tool would report it synced); the same inputs give the same name,
    so a re-sync is a no-op. ``NAME`` may have at most 43 characters (52 with the suffix).
    """
    if len(name) > MAX_NAME - HASH_CHARS - 1:
        raise InvalidNameError(
            f"--name {name!r}: at most {MAX_NAME - HASH_CHARS - 1} characters with --name-hash "
            f"(the name gets -<{HASH_CHARS} hex digits>, and job names have at most {MAX_NAME})"
        )
    text = to_text(render_manifests(config, values, sets, name, namespace), "yaml")
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]}"


def drift(committed: Path, fresh: str) -> str:
    """The unified diff from the file ``committed`` to the text ``fresh``; empty when they are byte-identical.

    Raises:
        InputFileError: ``committed`` does not exist.
    """
    if not committed.is_file():
        raise InputFileError(f"{committed}: no such file (render it first, without --check)")
    old = committed.read_text()
    if old == fresh:
        return ""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), fresh.splitlines(keepends=True), f"{committed} (committed)", "atft render"
        )
    )


def to_text(objs: Sequence[dict[str, Any]], fmt: str = "yaml") -> str:
    """Deterministic text for ``objs``: keys sorted; multi-line strings (the config) as YAML literal blocks.

    ``yaml``: documents separated by ``---``; ``json``: one ``v1 List`` (both are accepted by
    ``kubectl apply -f -``).
    """
    if fmt == "json":
        return json.dumps({"apiVersion": "v1", "items": list(objs), "kind": "List"}, indent=2, sort_keys=True) + "\n"
    if fmt != "yaml":
        raise ChartError(f"output format {fmt!r}: allowed: {', '.join(FORMATS)}")
    return "".join(
        "---\n" + yaml.dump(obj, Dumper=_LiteralDumper, sort_keys=True, default_flow_style=False, width=120)
        for obj in objs
    )


def find_helm() -> Path:
    """``$ATFT_HELM``, else ``helm`` on PATH, else ``.tools/bin/helm`` (from scripts/fetch_helm.py); 3.14+."""
    if env := os.environ.get(HELM_ENV):
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ToolMissingError(f"{HELM_ENV}={env}: not an executable file; unset it or run {FETCH_SCRIPT}")
    elif found := shutil.which("helm"):
        path = Path(found)
    elif LOCAL_HELM.is_file():
        path = LOCAL_HELM
    else:
        raise ToolMissingError(
            f"helm not found: set {HELM_ENV}=/path/to/helm, put helm (3.14+) on PATH, "
            f"or run `python3 {FETCH_SCRIPT}` to install it at .tools/bin/helm"
        )
    _check_version(path)
    return path


@functools.cache
def _check_version(path: Path) -> None:
    proc = subprocess.run([str(path), "version", "--short"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.(\d+)", proc.stdout.strip())
    if proc.returncode != 0 or match is None:
        raise ToolMissingError(f"{path}: `helm version` failed: {(proc.stderr or proc.stdout).strip()[:200]}")
    if (int(match[1]), int(match[2])) < MIN_HELM:
        raise ToolMissingError(f"{path}: helm {proc.stdout.strip()} is too old; need 3.14+ (run {FETCH_SCRIPT})")


def _csv_quoted(path: str) -> str:
    """``--values`` is a comma-separated list (a CSV field each): quote a path that has a comma or a quote."""
    return '"' + path.replace('"', '""') + '"' if any(c in path for c in ',"') else path


def _check_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > MAX_NAME:
        raise InvalidNameError(
            f"--name {name!r}: must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) "
            f"of at most {MAX_NAME} characters"
        )


def _helm_message(stderr: str, sources: Sequence[str]) -> str:
    """Helm's error reduced to what the user must change: the values key, the problem, where values came from.

    Schema errors arrive as ``- at '/exporter': additional properties 'enabeld' not allowed``; they become
    ``exporter: additional properties 'enabeld' not allowed``. ``fail`` messages of the chart already name their
    key. Template paths and Helm's ``--debug`` advice are dropped.
    """
    text = " ".join(line.strip() for line in stderr.strip().splitlines() if line.strip()).removeprefix("Error: ")
    text = re.sub(r"execution error at \([^)]*\): ", "", text)
    text = text.replace(" Use --debug flag to render out invalid YAML", "")
    text = text.replace("values don't meet the specifications of the schema(s) in the following chart(s): atft: ", "")
    text = re.sub(r"- at '/?([^']*)': ", lambda m: (m[1].replace("/", ".") or "(top level)") + ": ", text)
    where = f" (values from {', '.join(sources)})" if sources else ""
    return f"chart values rejected: {text or 'helm template failed without a message'}{where}"


def _sort_key(obj: dict[str, Any]) -> tuple[int, str, str, str]:
    kind = str(obj.get("kind", ""))
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    meta = obj.get("metadata") or {}
    return (rank, kind, str(meta.get("namespace", "")), str(meta.get("name", "")))


class _LiteralDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as ``|`` blocks (PyYAML falls back to quotes when it must)."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str_representer)
