#!/usr/bin/env bash
# podman with this project's own configuration: `scripts/image/podman.sh <podman args...>`.
#
# Why a wrapper: podman fixes its storage driver on its very first call and refuses to change it later,
# and its defaults do not work here: crun refuses this machine's cgroup layout (so runc), and root lacks
# CAP_SYS_RESOURCE, so podman's default nofile/nproc ulimits (above the hard limits) fail every container
# start. Every call therefore goes through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF files written here,
# before podman runs, with kernel overlay storage and all state under $ATFT_PODMAN_HOME (default
# ~/.cache/atft-image/podman): nothing in /var/lib/containers, nothing shared with another podman user.
set -euo pipefail

HOME_DIR="${ATFT_PODMAN_HOME:-$HOME/.cache/atft-image/podman}"
command -v podman >/dev/null || { echo "podman missing; run scripts/image/install-tools.sh" >&2; exit 2; }
command -v runc >/dev/null || { echo "runc missing; run scripts/image/install-tools.sh" >&2; exit 2; }
mkdir -p "$HOME_DIR"/{storage,run,tmp}

# Fixed, modest ulimits: enough for training with a few loader workers, and below the hard limits that
# runc inherits here (measured: nofile 20000, nproc 32768; asking for the hard limit itself still failed,
# so stay well under it). A host with lower hard limits gets those instead, never more.
NOFILE=16384
NPROC=8192
HARD_N="$(ulimit -Hn)"
HARD_U="$(ulimit -Hu)"
[[ "$HARD_N" != unlimited && "$HARD_N" -lt "$NOFILE" ]] && NOFILE="$HARD_N"
[[ "$HARD_U" != unlimited && "$HARD_U" -lt "$NPROC" ]] && NPROC="$HARD_U"

write() {  # write() PATH: stdin -> PATH atomically, so a concurrent podman call never reads half a file
    cat >"$1.tmp.$$"
    mv "$1.tmp.$$" "$1"
}

# No static_dir here: podman's exit command (`container cleanup`, run by conmon) gets --root but not the
# static dir, and so looks for the container database under <graphroot>/libpod; a static_dir elsewhere
# makes it miss the container, and every `podman run` then waits 20 s for an exit code that never comes.
write "$HOME_DIR/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$HOME_DIR/events.log"
tmp_dir = "$HOME_DIR/tmp"
CONF

write "$HOME_DIR/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$HOME_DIR/storage"
runroot = "$HOME_DIR/run"

[storage.options.overlay]
mountopt = "nodev"
CONF

export CONTAINERS_CONF="$HOME_DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$HOME_DIR/storage.conf"
exec podman "$@"
