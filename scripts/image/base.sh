#!/usr/bin/env bash
# Make (once) the local base rootfs tarball: Debian bookworm minbase with python3 + venv + CA certs.
#
# Why: no registry image can be pulled here, so the Dockerfile's BASE_IMAGE is built from the Debian
# mirror the host's apt already uses (read from `apt-get indextargets`, so the same mirror and network
# path as every other apt call here). The tarball is cached; a second run prints its path and does
# nothing. Delete it (or set ATFT_IMAGE_CACHE elsewhere) to make a fresh one.
#
# Usage: scripts/image/base.sh            -> prints the tarball's path on stdout
set -euo pipefail

SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
CACHE="${ATFT_IMAGE_CACHE:-$HOME/.cache/atft-image}"
TARBALL="$CACHE/$SUITE-minbase-python3.tar"

if [[ -s "$TARBALL" ]]; then
    echo "base: cached $TARBALL" >&2
    echo "$TARBALL"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base: debootstrap missing; run scripts/image/install-tools.sh" >&2; exit 2; }

MIRROR="$(apt-get indextargets --format '$(SITE) $(RELEASE)' | awk -v s="$SUITE" '$2 == s {print $1; exit}')"
if [[ -z "$MIRROR" ]]; then
    echo "base: the host's apt has no '$SUITE' source; run 'apt-get update' or add one" >&2
    exit 2
fi

mkdir -p "$CACHE"
ROOT="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
trap 'rm -rf "$ROOT" "$TARBALL.tmp"' EXIT
echo "base: debootstrap $SUITE from $MIRROR into $ROOT" >&2
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
# Package caches and lists are 100+ MB the image never needs (it installs no .deb at run time).
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log
tar --numeric-owner --xattrs -C "$ROOT" -cf "$TARBALL.tmp" .
mv "$TARBALL.tmp" "$TARBALL"
echo "$TARBALL"
