# syntax=docker/dockerfile:1.7
# The atft training image: ENTRYPOINT runs `python -m atft.train` (the library's training module).
#
# Default build (CUDA, for a real registry; docs/image.md has the full commands):
#   docker buildx build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t REGISTRY/atft:TAG .
# Local CPU route (what CI builds and runs here with podman; scripts/image/build.sh):
#   --build-arg BASE_IMAGE=localhost/atft-base --build-arg BASE_TAG=bookworm --build-arg INSTALL_PYTHON=0
#   --build-arg LOCK=requirements/image-cpu.lock --build-arg NVIDIA_REQUIRE_CUDA= --build-context wheels=/opt/wheels
#
# Supply chain: the base is pinned by digest, and every Python distribution (torch included) comes from a lock
# with sha256 hashes (requirements/image-*.lock, scripts/image/lock.py), installed with --require-hashes and
# only as wheels; the build fails when the base's python3 is not the Python the lock was resolved for.
#
# Runtime contract: UID/GID 10001, read-only root filesystem, no writable /tmp. Everything the run writes
# goes under the run volume (/runs): the run directory, the synthetic-panel cache (ATFT_CACHE_DIR),
# matplotlib's config/cache dir (MPLCONFIGDIR, which must be writable or matplotlib falls back to /tmp) and
# torch's compile cache (TORCHINDUCTOR_CACHE_DIR: `import torch_geometric` imports torch._dynamo, which
# creates that directory at import, under tempfile.gettempdir() by default, and so fails without /tmp).
# Python writes no .pyc (PYTHONDONTWRITEBYTECODE).

# The CUDA runtime base, pinned by tag and manifest digest (Ubuntu 24.04: Python 3.12, glibc 2.39). The digest
# is the one public builds of this tag record; it could not be pulled from here (no registry), so
# docs/image.md says how to check it. A mirror's copy: BASE_IMAGE=mirror/nvidia/cuda, same BASE_TAG.
# torch does not use the base's CUDA libraries: PyPI's torch wheel brings its own (CUDA 13.0, the nvidia-* wheels
# of the lock), so what the node needs is a driver for CUDA 13.0 (NVIDIA_REQUIRE_CUDA below).
ARG BASE_IMAGE=nvidia/cuda
ARG BASE_TAG=12.8.1-cudnn-runtime-ubuntu24.04@sha256:ac55d124da4882b497f732d8dfd9a702d5447a5f29d08d56da6f64f0a1eb34bc

# An empty default for the local wheel folder; `--build-context wheels=DIR` replaces this stage, so the
# wheels are bind-mounted into one RUN and never copied into a layer.
FROM scratch AS wheels

FROM ${BASE_IMAGE}:${BASE_TAG} AS python-base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# CUDA runtime images ship no Python: install the distribution's python3 + venv (INSTALL_PYTHON=1).
# A base that already has them (the local debootstrap base) says INSTALL_PYTHON=0. The deps stage then fails
# the build unless this python3 is the version the lock was resolved for.
ARG INSTALL_PYTHON=1
# DL3008 (pin apt versions) skipped: the python3 package version differs per base (Ubuntu 24.04 vs Debian),
# so a pin here would break every other BASE_TAG; the base itself is pinned by digest instead.
# hadolint ignore=DL3008
RUN if [ "${INSTALL_PYTHON}" = 1 ]; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -c 'import sys, venv; assert sys.version_info >= (3, 11), f"atft needs Python >= 3.11, base has {sys.version}"'

FROM python-base AS deps
# SHELL is per stage here: OCI image configs (podman's default format) do not carry it over.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The lock of this route: requirements/image-cuda.lock (CPython 3.12, torch and its CUDA wheels from PyPI) or
# requirements/image-cpu.lock (CPython 3.11, torch's CPU wheel from the `wheels` build context).
ARG LOCK=requirements/image-cuda.lock
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY ${LOCK} requirements/image.lock
# A lock holds what one CPython installs (markers such as torch's setuptools on 3.12+, cp311 vs cp312 wheels):
# a base whose python3 is another version fails here, naming both, instead of installing a near miss.
RUN want="$(sed -n 's/^# python-version: //p' requirements/image.lock)" \
    && have="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    && if [ -z "${want}" ] || [ "${want}" != "${have}" ]; then \
        echo "error: ${LOCK} is locked for CPython ${want:-?}, but the base's python3 is ${have}:" \
            "build with the lock resolved for this base (docs/image.md)" >&2; \
        exit 1; \
    fi \
    && python3 -m venv /opt/venv
# The CA bundle is a build secret (pip trusts the builder's CA, e.g. a proxy's), mounted for this one step
# and never baked into a layer. --require-hashes: every file's sha256 must be one the lock lists, or pip stops;
# it also refuses a dependency the lock does not pin. --only-binary: no sdist, so no build step runs code or
# fetches build dependencies that no hash covers. The wheel folder (empty for the CUDA route) is bind-mounted,
# never copied into a layer. This stage depends on the lock only, so a source change never reinstalls torch.
RUN --mount=type=secret,id=ca,required=true \
    --mount=type=bind,from=wheels,target=/wheels \
    PIP_CERT=/run/secrets/ca /opt/venv/bin/pip install --require-hashes --only-binary=:all: --find-links /wheels \
        -r requirements/image.lock

FROM deps AS project
# The project installed into the venv, built offline with the setuptools the lock installed. --no-deps
# --no-index: the lock already installed every dependency; `pip check` fails the build if one is missing or
# at a version pyproject does not allow (a pin changed without re-running scripts/image/lock.py). The runtime
# stage copies the finished venv (a bind mount of this stage instead breaks when buildah reuses it from cache).
COPY pyproject.toml README.md ./
COPY src src
COPY cli cli
# the chart and the shipped configs are package data of atft_cli (pyproject maps them in)
COPY helm/atft helm/atft
COPY configs configs
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation --no-index . \
    && /opt/venv/bin/pip check

FROM python-base AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/atft/atft
# The CUDA the locked torch was built for (nvidia-cuda-runtime 13.0 in image-cuda.lock; a test keeps the two in
# step): the NVIDIA container runtime refuses to start the container on a node whose driver is older, instead
# of torch finding no usable GPU at run time. Empty for a CPU image (the CPU route).
ARG NVIDIA_REQUIRE_CUDA="cuda>=13.0"
LABEL org.opencontainers.image.title="atft" \
      org.opencontainers.image.description="ATFT-GAT-FAN stock-return model training (python -m atft.train)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed non-root user with no home: anything that would write to ~ fails loudly instead.
RUN groupadd --gid 10001 atft \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin atft
COPY --from=project /opt/venv /opt/venv
COPY configs /opt/atft/configs
# The chart and the pinned helm binary (fetched and sha256-checked by scripts/fetch_helm.py before the
# build) let the image also run `atft render` / `atft submit`: the GitOps CronJob's scheduled retrain.
COPY helm/atft /opt/atft/helm/atft
COPY .tools/bin/helm /opt/atft/bin/helm
WORKDIR /opt/atft
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ATFT_CHART=/opt/atft/helm/atft \
    ATFT_HELM=/opt/atft/bin/helm \
    ATFT_CACHE_DIR=/runs/.cache/atft \
    MPLCONFIGDIR=/runs/.cache/matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/runs/.cache/torchinductor \
    NVIDIA_REQUIRE_CUDA=${NVIDIA_REQUIRE_CUDA}
USER 10001:10001
# A training job is watched through its events and exit code (the exporter and the Job), not a probe.
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "atft.train"]
