#!/usr/bin/env bash
# Training throughput of tabnas's MLP step against CPU peers (PyTorch, scikit-learn).
#
# Usage: bench/mlp.sh [ARCH ...]          default: 54-512-512-512-7 180-48-160-32-144-10
# Environment:
#   THREADS    threads for every contender (GOMAXPROCS for Go), default 2
#   BENCHTIME  go test -benchtime, default 3s
#   COUNT      go test -count, the best run is kept, default 3
#   PEER_ARGS  extra arguments for bench/peers.py (e.g. "--seconds 1 --repeats 1")
#   PYTHON     interpreter that can import torch and sklearn, default /usr/bin/python3
#              (Debian's packages python3-torch python3-sklearn)
set -euo pipefail

cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
BENCHTIME=${BENCHTIME:-3s}
COUNT=${COUNT:-3}
PYTHON=${PYTHON:-/usr/bin/python3}
if [ $# -gt 0 ]; then archs=("$@"); else archs=(54-512-512-512-7 180-48-160-32-144-10); fi

# The peers need Python with torch and scikit-learn; say so before spending minutes on Go.
if ! command -v "$PYTHON" >/dev/null 2>&1; then
	echo "mlp.sh: no Python interpreter at $PYTHON; the peers cannot be measured." >&2
	echo "        install Debian's python3-torch python3-sklearn or set PYTHON." >&2
	exit 2
fi
if ! "$PYTHON" -c 'import torch, sklearn, threadpoolctl' 2>/dev/null; then
	echo "mlp.sh: $PYTHON cannot import torch, sklearn and threadpoolctl; the peers cannot be measured." >&2
	echo "        apt-get install -y --no-install-recommends python3-torch python3-sklearn" >&2
	exit 2
fi

pattern="^BenchmarkTrainStep\$/^($(IFS='|'; echo "${archs[*]}"))\$"
gout=$(mktemp)
pout=$(mktemp)
trap 'rm -f "$gout" "$pout"' EXIT

echo "== go test -bench $pattern -cpu $THREADS -benchtime $BENCHTIME -count $COUNT ./internal/nn/" >&2
if ! go test -run '^$' -bench "$pattern" -cpu "$THREADS" -benchtime "$BENCHTIME" -count "$COUNT" ./internal/nn/ >"$gout" 2>&1; then
	cat "$gout" >&2
	echo "mlp.sh: go test -bench BenchmarkTrainStep failed in ./internal/nn/" >&2
	exit 1
fi
grep '^BenchmarkTrainStep' "$gout" >&2 || true

# Best samples/s per architecture, from lines such as
# BenchmarkTrainStep/54-512-512-512-7-2   100   9876543 ns/op   51840 samples/s
ours=()
for a in "${archs[@]}"; do
	v=$(awk -v name="BenchmarkTrainStep/$a" '
		$1 == name || index($1, name "-") == 1 && substr($1, length(name) + 2) ~ /^[0-9]+$/ {
			for (i = 3; i < NF; i++) if ($(i + 1) == "samples/s" && $i + 0 > best) best = $i + 0
		}
		END { if (best > 0) print best }' "$gout")
	if [ -z "$v" ]; then
		echo "mlp.sh: BenchmarkTrainStep/$a reported no samples/s metric in ./internal/nn/" >&2
		echo "        (the benchmark must exist and call b.ReportMetric(x, \"samples/s\"))" >&2
		exit 1
	fi
	ours+=("$a=$v")
done

echo "== $PYTHON bench/peers.py --threads $THREADS ${PEER_ARGS:-} ${archs[*]}" >&2
# shellcheck disable=SC2086 # PEER_ARGS is a list of words on purpose
if ! "$PYTHON" bench/peers.py --threads "$THREADS" ${PEER_ARGS:-} "${archs[@]}" >"$pout"; then
	cat "$pout" >&2
	echo "mlp.sh: bench/peers.py failed" >&2
	exit 1
fi
cat "$pout" >&2

"$PYTHON" - "$pout" "${ours[@]}" <<'EOF'
import json, sys

peers = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ours = dict(kv.split("=", 1) for kv in sys.argv[2:])
cols = [("pytorch", "OMP_WAIT_POLICY=PASSIVE", "torch passive"), ("pytorch", "default", "torch default"), ("sklearn", "default", "sklearn")]
head = f"{'arch':<24} {'tabnas':>10}"
for _, _, label in cols:
    head += f" {label:>14} {'ratio':>6}"
head += f" {'vs best peer':>12}"
print(head)
for arch, v in ours.items():
    v = float(v)
    line, best = f"{arch:<24} {v:>10.0f}", 0.0
    for peer, setting, _ in cols:
        r = next((p for p in peers if p["arch"] == arch and p["peer"] == peer and p["setting"] == setting and "samples_per_s" in p), None)
        if r is None:
            line += f" {'-':>14} {'-':>6}"
            continue
        s = r["samples_per_s"]
        best = max(best, s)
        line += f" {s:>14.0f} {v / s:>6.2f}"
    line += f" {v / best:>12.2f}" if best else f" {'-':>12}"
    print(line)
print("samples/s of training steps (forward, backward, Adam), batch 512, float32; ratio = tabnas / peer")
EOF
