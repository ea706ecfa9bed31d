#!/usr/bin/env bash
# Run the image as the cluster would, locked down:
#   scripts/image/run.sh RUNS_DIR [IMAGE [PODMAN_OPTS...]] -- [ARGS...]
#
# The flags are the chart's securityContext in podman terms: read-only root filesystem and no writable /tmp
# (--read-only-tmpfs=false), fixed non-root UID, every capability dropped, no privilege escalation, and no
# network. RUNS_DIR (host) is the only writable mount, at /runs; it is created and handed to UID 10001, as
# fsGroup does in the cluster. PODMAN_OPTS go before the image (e.g. `--entrypoint python`); ARGS after it.
# --no-healthcheck: the image says HEALTHCHECK NONE, yet podman 4.3 still tries to register a systemd
# health timer for it and logs errors. Example:
#   scripts/image/run.sh runs/image -- --config configs/debug.yaml --out /runs/debug
set -euo pipefail
cd "$(dirname "$0")/../.."

[[ $# -ge 1 ]] || { echo "usage: scripts/image/run.sh RUNS_DIR [IMAGE [PODMAN_OPTS...]] -- [ARGS...]" >&2; exit 2; }
RUNS="$1"; shift
IMAGE=localhost/atft:dev
if [[ $# -gt 0 && "$1" != -- ]]; then IMAGE="$1"; shift; fi
OPTS=()
while [[ $# -gt 0 && "$1" != -- ]]; do OPTS+=("$1"); shift; done
[[ "${1:-}" == -- ]] && shift

mkdir -p "$RUNS"
chown 10001:10001 "$RUNS"
exec scripts/image/podman.sh run --rm --read-only --read-only-tmpfs=false --user 10001:10001 \
    --cap-drop=ALL --security-opt=no-new-privileges --network=none --no-healthcheck \
    -v "$(realpath "$RUNS")":/runs "${OPTS[@]}" "$IMAGE" "$@"
