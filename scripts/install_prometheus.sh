#!/usr/bin/env bash
# Install the real Prometheus servers the alert-path tests run against (idempotent; used by .ci/run).
#
# Why Debian's packages: CI here reaches only PyPI, Debian and npm, and these are the upstream servers
# built by Debian. promtool comes with `prometheus`. Versions are pinned to bookworm's, so a rule or an
# API that changes between releases shows up as a deliberate bump here, not as a surprise in CI.
# The packages' own services are not started: policy-rc.d forbids it in containers, and the tests start
# each server themselves on free ports with temporary storage.
#
# Usage: scripts/install_prometheus.sh        (root, or sudo available)
set -euo pipefail

PINS=(
  "prometheus=2.42.0+ds-5+deb12u1"
  "prometheus-pushgateway=1.5.1-2+b5"
  "prometheus-alertmanager=0.25.0-1+b4"
)

installed() {  # every pinned package already at its pinned version
  local pin name version
  for pin in "${PINS[@]}"; do
    name=${pin%%=*}
    version=${pin#*=}
    [[ "$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || true)" == "$version" ]] || return 1
  done
}

if installed; then
  echo "install_prometheus: already installed: ${PINS[*]}"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install_prometheus: needs root or sudo to apt-get install" >&2; exit 2; }
  SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# Do not let the packages start their services (no init system in CI containers; the tests start them).
"${SUDO[@]}" env RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${PINS[@]}"
for bin in prometheus promtool prometheus-pushgateway prometheus-alertmanager; do
  command -v "$bin" >/dev/null || { echo "install_prometheus: $bin missing after install" >&2; exit 1; }
done
prometheus --version 2>&1 | head -1
