#!/usr/bin/env bash
# k8s/rendered/<overlay>/manifests.yaml: the commit-driven job of each GitOps overlay, `atft render` of the
# overlay's values (k8s/overlays/<overlay>/values.yaml) with its config, named after its own hash
# (--name-hash), so a merged change to the config, the values or the chart is a new PyTorchJob.
#
#   scripts/gitops_render.sh           re-render every overlay (commit the result with the change)
#   scripts/gitops_render.sh --check   exit 1 with the diff when a committed render is stale (CI)
#
# The one list of what is rendered how: tests/gitops reads it from here (`render_commands`).
set -euo pipefail
cd "$(dirname "$0")/.."
ATFT=${ATFT:-atft}

# overlay  config
OVERLAYS=(
    "dev  configs/debug.yaml"
    "prod configs/prod-20ep.yaml"
    "trainer configs/sp500.yaml"
)

mode=write
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

status=0
for entry in "${OVERLAYS[@]}"; do
    read -r overlay config <<<"$entry"
    out=k8s/rendered/$overlay/manifests.yaml
    args=(render --config "$config" --values "k8s/overlays/$overlay/values.yaml"
          --name "atft-$overlay" --name-hash --namespace "atft-$overlay")
    if [[ $mode == check ]]; then
        $ATFT "${args[@]}" --check "$out" || status=$?
    else
        # a failed render leaves the committed file as it was, and no partial output beside it
        if $ATFT "${args[@]}" >"$out.tmp"; then
            mv "$out.tmp" "$out"
            echo "wrote $out" >&2
        else
            status=$?
            rm -f "$out.tmp"
        fi
    fi
done
exit "$status"
