#!/usr/bin/env bash
# Install what the image test needs: Debian's podman with runc, and debootstrap for the local base.
#
# Why these: no registry image can be pulled here, so the base is made with debootstrap from the
# mirror apt already uses, and podman builds and runs it daemonless as root. crun (podman's usual
# runtime) refuses this machine's cgroup layout, so runc is installed and named in our containers.conf.
# Recommends are skipped on purpose: buildah/fuse-overlayfs/slirp4netns are for rootless use, and we
# run as root with kernel overlayfs. Versions are Debian bookworm's; pinned below to what we test.
# Idempotent: a second run with everything present does nothing and says so.
set -euo pipefail

PKGS=(podman=4.3.1+ds1-8+deb12u1+b3 runc=1.1.5+ds1-1+deb12u1 debootstrap=1.0.128+nmu2+deb12u2)

missing=()
for spec in "${PKGS[@]}"; do
    name="${spec%%=*}"
    want="${spec#*=}"
    have="$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)"
    if [[ "$have" != "install ok installed $want" ]]; then
        missing+=("$spec")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-tools: podman, runc, debootstrap already at the pinned versions" >&2
    exit 0
fi

echo "install-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
podman --version
runc --version | head -n 1
