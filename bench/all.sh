#!/usr/bin/env bash
# Runs every benchmark behind BENCHMARKS.md, one after the other, and keeps the raw output
# in bench/out/ (not committed). The distributed benchmark needs the real servers:
#
#   infra/scripts/with-servers.sh bench/all.sh
#
# Peers (PyTorch, scikit-learn) need Debian's python3-torch and python3-sklearn; they are
# measured with the machine's OpenBLAS settings and with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE
# unset (OpenBLAS then picks its own kernel), and the better of the two counts.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
run() { # name, command...
	local name=$1
	shift
	echo "== $name: $*" >&2
	"$@" 2>&1 | tee "$out/$name.txt"
}
run policy go test -run '^$' -bench 'ExactDP|MonteCarlo' -benchtime 200x ./internal/policy/
run search-loop go test -run '^$' -bench 'SearchLoop' -benchtime 3x ./pipeline/
if [[ -n "${TABNAS_TEST_NATS_URL:-}" ]]; then
	run evaluator-processes go test -run '^$' -bench 'EvaluatorProcesses' -benchtime 2x ./e2e/
else
	echo "== evaluator-processes skipped: no real servers (run under infra/scripts/with-servers.sh)" >&2
fi
run dataset go test -run '^$' -bench 'Ingest|ReadShard|ShardCache' -benchtime 3x ./dataset/
run latency go test -run '^$' -bench 'LatencyEstimate' -benchtime 1x ./sampler/
run sgemm go test -run '^$' -bench 'Sgemm' -benchtime 200ms -count 3 ./internal/gemm/
run mlp-default bench/mlp.sh
run mlp-own-kernel env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE bench/mlp.sh
