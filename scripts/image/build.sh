#!/usr/bin/env bash
# Build the Dockerfile here, the local CPU route: `scripts/image/build.sh [IMAGE]` (default localhost/atft:dev).
#
# What differs from the CUDA build (docs/image.md) is only build arguments: the base is the debootstrap
# rootfs (scripts/image/base.sh, CPython 3.11) imported into podman, the lock is requirements/image-cpu.lock
# (resolved for that Python, torch's CPU wheel hashed from the machine's wheel folder, which is a build context
# bind-mounted into one RUN, never in a layer), and pip trusts the host's CA bundle given as a build secret.
# The RUN steps use the host network (no bridge networking stack needed; they only reach the package index).
# `--format docker`: the OCI format drops SHELL and HEALTHCHECK. Prints the image ID on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE="${1:-localhost/atft:dev}"
BASE=localhost/atft-base:bookworm
LOCK=requirements/image-cpu.lock
WHEELS="${ATFT_WHEELS_DIR:-/opt/wheels}"
CA="${ATFT_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
PODMAN=scripts/image/podman.sh

# The torch the lock pins must be in the wheel folder (pip then checks its hash against the lock).
torch="$(sed -n 's/^torch==\([^ ]*\).*/\1/p' "$LOCK")"
[[ -n "$torch" ]] || { echo "build: $LOCK pins no torch; run python3 scripts/image/lock.py" >&2; exit 2; }
compgen -G "$WHEELS/torch-${torch}-*.whl" >/dev/null \
    || { echo "build: no torch-${torch}-*.whl in $WHEELS (the wheel $LOCK pins; set ATFT_WHEELS_DIR)" >&2; exit 2; }
[[ -s "$CA" ]] || { echo "build: no CA bundle at $CA (set ATFT_CA_BUNDLE)" >&2; exit 2; }

# One build at a time (pytest -n 2 may start two): the second waits, then finds every layer cached.
CACHE="${ATFT_IMAGE_CACHE:-$HOME/.cache/atft-image}"
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9

if ! "$PODMAN" image exists "$BASE"; then
    tarball="$(scripts/image/base.sh)"
    "$PODMAN" import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$BASE" >/dev/null
fi

VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
REVISION="$(git rev-parse HEAD)"
"$PODMAN" build --format docker --pull=never --network=host --layers \
    --build-arg BASE_IMAGE="${BASE%:*}" --build-arg BASE_TAG="${BASE##*:}" --build-arg INSTALL_PYTHON=0 \
    --build-arg LOCK="$LOCK" --build-arg NVIDIA_REQUIRE_CUDA= \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
    --build-context wheels="$WHEELS" --secret id=ca,src="$CA" \
    -t "$IMAGE" -f Dockerfile . >&2
"$PODMAN" image inspect --format '{{.Id}}' "$IMAGE"
