#!/usr/bin/env bash
# Runs CMD with the real test servers up: installs them if needed, starts them in a private
# run dir, exports their env (plus TABNAS_TEST_REQUIRE_SERVERS=1, so tests fail instead of
# skipping when a server variable is missing), runs CMD and always stops the servers.
# Usage: with-servers.sh CMD [ARGS...]   (exits with CMD's status)
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$here/install-servers.sh" >/dev/null

# A private run dir: several checkouts may test on one machine at the same time.
TABNAS_RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tabnas-servers.XXXXXX")"
export TABNAS_RUN_DIR
trap '"$here/servers.sh" stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$here/servers.sh" start
# shellcheck disable=SC1091
source "$TABNAS_RUN_DIR/env"
export TABNAS_TEST_REQUIRE_SERVERS=1

# CMD runs in the background so that a TERM sent to this script (CI timeouts, kill) is
# passed on to it at once; bash would otherwise wait for CMD before running the trap.
"$@" <&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
trap 'kill -INT "$child" 2>/dev/null; wait "$child"; exit 130' INT
status=0
wait "$child" || status=$?
exit "$status"
