#!/usr/bin/env bash
# TabNAS (default settings) against budget-matched random search and successive-halving
# random search, at equal wall-clock, on the shared datasets where the budget binds. Every
# method gets the same --max-time for the whole command (data loading, search steps and the
# final stand-alone training all count) and reads the same ingested dataset.
#
#   experiments/compare.sh                      # every dataset, seeds 1–5
#   SEEDS="1 2" experiments/compare.sh higgs adult
#
# Runs are sequential and interleaved (for each seed and dataset: tabnas, random, halving),
# so a change of machine load hits the methods alike. An existing result is kept (FORCE=1
# redoes it). Raw outputs: experiments/results/compare/<case>/<method>-s<seed>.json; the
# tables: go run ./experiments/compare experiments/results/compare.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$REPO/../shared/datasets}
WORK=${WORK:-${TMPDIR:-/tmp}/tabnas-compare}
RESULTS=${RESULTS:-$REPO/experiments/results/compare}
SEEDS=${SEEDS:-"1 2 3 4 5"}
FORCE=${FORCE:-0}
METHODS=${METHODS:-"tabnas random halving"}

# case: dataset file, parameter budget, seconds, extra ingest flags
declare -A FILE=([connect4]=connect4/connect4.csv.gz [higgs]=higgs/higgs_26k.csv.gz [adult]=adult/adult.csv.gz
	[california]=california_housing/california_housing.csv.gz [covertype]=covertype/covertype_197k.csv.gz
	[fashion]=fashion_mnist/fashion_mnist_train.csv.gz)
declare -A CASE_DS=([connect4-10k]=connect4 [connect4-20k]=connect4 [higgs]=higgs [adult]=adult [california]=california
	[covertype]=covertype [fashion]=fashion)
declare -A BUDGET=([connect4-10k]=10000 [connect4-20k]=20000 [higgs]=10000 [adult]=5000 [california]=5000
	[covertype]=5000 [fashion]=30000)
declare -A SECONDS=([connect4-10k]=40 [connect4-20k]=40 [higgs]=20 [adult]=20 [california]=20 [covertype]=60 [fashion]=60)
CASES=${*:-connect4-10k connect4-20k higgs adult california covertype fashion}

mkdir -p "$WORK/bin" "$WORK/logs" "$RESULTS"
WORK=$(cd "$WORK" && pwd)
DATA=$(cd "$DATA" && pwd)
if [ -z "${BIN:-}" ]; then
	(cd "$REPO" && go build -o "$WORK/bin/tabnas" ./cmd/tabnas)
	BIN=$WORK/bin/tabnas
fi
{
	echo "go: $(go version)"
	echo "binary sha256: $(sha256sum "$BIN" | cut -d' ' -f1)"
	echo "commit: $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet || echo ' (with uncommitted changes)')"
	echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	echo "seeds $SEEDS; cases $CASES"
} >"$RESULTS/env.txt"

header() { (set +o pipefail; zcat "$1" | head -1 | tr -d '\r'); }

ingest() {
	local ds=$1 src=$DATA/${FILE[$1]} extra=()
	[ -e "$WORK/store/datasets/$ds/manifest.json" ] && return 0
	case $ds in
	connect4) extra=(--categorical "$(header "$src" | tr ',' '\n' | grep -vx target | paste -sd,)") ;;
	adult) extra=(--categorical workclass,education,marital-status,occupation,relationship,race,sex,native-country) ;;
	esac
	"$BIN" ingest --data "$src" --store "$WORK/store" --prefix "datasets/$ds" "${extra[@]}" 2>>"$WORK/logs/ingest.log"
}

run() { # case method seed
	local c=$1 m=$2 s=$3 ds=${CASE_DS[$1]} out=$RESULTS/$1/$2-s$3.json
	[ "$FORCE" = 1 ] || [ ! -s "$out" ] || return 0
	mkdir -p "$RESULTS/$c"
	local common=(--data "dataset:datasets/$ds" --store store --max-params "${BUDGET[$c]}" --max-time "${SECONDS[$c]}" --seed "$s" --json --quiet)
	local args
	case $m in
	tabnas) args=(search --out runs "${common[@]}" --progress none) ;;
	random) args=(random --out models "${common[@]}") ;;
	halving) args=(random --halving --out models "${common[@]}") ;;
	esac
	local t0 t1
	t0=$(date +%s.%N)
	(cd "$WORK" && "$BIN" "${args[@]}" 2>>"$WORK/logs/$c-$m-s$s.log" | tail -1 >"$out.tmp")
	t1=$(date +%s.%N)
	echo "{\"wall\": $(awk "BEGIN{print $t1 - $t0}"), \"load1\": $(cut -d' ' -f1 /proc/loadavg)}" >"$RESULTS/$c/$m-s$s.time"
	mv "$out.tmp" "$out"
	echo "$c $m seed $s: $(head -c 160 "$out")"
}

for c in $CASES; do ingest "${CASE_DS[$c]}"; done
for s in $SEEDS; do
	for c in $CASES; do
		for m in $METHODS; do run "$c" "$m" "$s"; done
	done
done
(cd "$REPO" && go run ./experiments/compare "$RESULTS") >"$RESULTS/summary.md"
echo "tables: $RESULTS/summary.md"
