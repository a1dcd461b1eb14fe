#!/usr/bin/env bash
# Reproduces every number of EXPERIMENTS.md: TabNAS vs Abs Reward vs budget-matched random
# search on connect4 and higgs. Run from anywhere; the datasets are expected in
# ../shared/datasets beside the repository (override with DATA=...).
#
#   experiments/run.sh                 # both datasets
#   experiments/run.sh higgs           # one
#
# Everything runs sequentially, one process at a time. A result that already exists is kept
# (delete it, or set FORCE=1, to redo it). Raw outputs: experiments/results/<dataset>/;
# tables: experiments/results/summary.md and runs.csv.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$REPO/../shared/datasets}
WORK=${WORK:-${TMPDIR:-/tmp}/tabnas-experiments} # store, models, logs (not committed)
RESULTS=${RESULTS:-$REPO/experiments/results}
STEPS=${STEPS:-"500 2000"} # search steps; every method runs at each
SEEDS=${SEEDS:-"1 2 3 4 5"}
BETAS=${BETAS:-"-0.5 -1 -2"}
TOPK=${TOPK:-3}
GRID=${GRID:-"64-64-64 96-96-96 128-64-32 128-128-64 192-128-64 256-128-64"}
FORCE=${FORCE:-0}
DATASETS=${*:-connect4 higgs}

mkdir -p "$WORK/bin" "$WORK/logs" "$RESULTS"
WORK=$(cd "$WORK" && pwd)
DATA=$(cd "$DATA" && pwd)
# BIN=path uses a binary built before (the numbers of one write-up come from one build).
if [ -z "${BIN:-}" ]; then
	(cd "$REPO" && go build -o "$WORK/bin/tabnas" ./cmd/tabnas)
	BIN=$WORK/bin/tabnas
fi
(cd "$REPO" && go build -o "$WORK/bin/summarize" ./experiments/summarize)
SUM=$WORK/bin/summarize
{
	echo "go: $(go version)"
	echo "binary sha256: $(sha256sum "$BIN" | cut -d' ' -f1)"
	echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	echo "steps $STEPS, seeds $SEEDS, betas $BETAS, top-k $TOPK, grid $GRID"
} >"$RESULTS/env.txt"

declare -A FILE=([connect4]=connect4/connect4.csv.gz [higgs]=higgs/higgs_26k.csv.gz)

# ingest DS: once per work directory, into store/datasets/DS. Connect-4's 42 board cells are
# categorical (0 blank, 1 o, 2 x) and are one-hot encoded; higgs is all numeric.
ingest() {
	local ds=$1 src=$DATA/${FILE[$1]} extra=()
	[ -e "$WORK/store/datasets/$ds/manifest.json" ] && return 0
	if [ "$ds" = connect4 ]; then
		local header
		header=$(set +o pipefail; zcat "$src" | head -1 | tr -d '\r') # head closes the pipe early
		extra=(--categorical "$(echo "$header" | tr ',' '\n' | grep -vx target | paste -sd,)")
	fi
	"$BIN" ingest --data "$src" --store "$WORK/store" --prefix "datasets/$ds" "${extra[@]}" 2>>"$WORK/logs/ingest.log"
}

# step DS NAME ARGS...: runs one tabnas command in WORK (relative paths only, so the raw
# JSON names no machine paths), keeps the last stdout line as RESULTS/DS/NAME.json and
# "wall user sys pull-errors load1" of the process as NAME.time (pull errors: the
# evaluator failed to fetch work, a sign of a stalled bus).
step() {
	local ds=$1 name=$2
	shift 2
	local out=$RESULTS/$ds/$name.json log=$WORK/logs/$ds-$name.log
	if [ "$FORCE" != 1 ] && [ -s "$out" ]; then
		return 0
	fi
	mkdir -p "$RESULTS/$ds"
	local load t
	load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
	echo "$(date +%T) $ds $name: tabnas $*" >&2
	t=$( { TIMEFORMAT='%R %U %S'; time (cd "$WORK" && "$BIN" "$@" >"$log.out" 2>"$log"); } 2>&1 ) || {
		echo "failed: $ds $name (see $log)" >&2
		tail -5 "$log" >&2
		return 1
	}
	tail -1 "$log.out" >"$out.tmp" && mv "$out.tmp" "$out"
	echo "$t $(grep -c 'level=WARN msg="pulling work"' "$log" || true) $load" >"$RESULTS/$ds/$name.time"
}

for ds in $DATASETS; do
	[ -n "${FILE[$ds]:-}" ] || { echo "unknown dataset $ds" >&2; exit 2; }
	ingest "$ds"
	data=(--data "dataset:datasets/$ds" --store store)

	# 1. Reference grid: stand-alone, seed 1; the best by validation loss sets the budget.
	for a in $GRID; do
		step "$ds" "grid-$a" train "${data[@]}" --out models --name "$ds-grid-$a" --arch "$a" --seed 1 --json
	done
	"$SUM" budget "$RESULTS/$ds" >"$RESULTS/$ds/budget.txt"
	read -r ref budget <"$RESULTS/$ds/budget.txt"
	echo "$ds: reference $ref, budget $budget parameters" >&2

	# 2. The reference over the seeds: its test loss, and the cost of one stand-alone training.
	for s in $SEEDS; do
		step "$ds" "ref-s$s" train "${data[@]}" --out models --name "$ds-ref-s$s" --arch "$ref" --seed "$s" --json
	done

	for n in $STEPS; do
		search=(search "${data[@]}" --out runs --max-params "$budget" --steps "$n" --top-k "$TOPK" --json --quiet --progress none)
		# 3. TabNAS: rejection + Monte-Carlo P(V) correction.
		for s in $SEEDS; do
			step "$ds" "tabnas-n$n-s$s" "${search[@]}" --run "$ds-tabnas-n$n-s$s" --method tabnas --seed "$s"
		done
		# 4. Abs Reward, Q + β·|params/T0 − 1| with T0 = the budget, no rejection.
		for b in $BETAS; do
			r=${b#-}
			r=${r//./p} # run ids take letters, digits, - and _
			for s in $SEEDS; do
				step "$ds" "abs-b$b-n$n-s$s" "${search[@]}" --run "$ds-abs-b$r-n$n-s$s" --method abs --beta "$b" --t0 "$budget" --seed "$s"
			done
		done
		# 5. Random search with the wall-clock of the TabNAS run of the same seed and steps.
		for s in $SEEDS; do
			secs=$("$SUM" field "$RESULTS/$ds/tabnas-n$n-s$s.json" seconds)
			step "$ds" "random-n$n-s$s" random "${data[@]}" --out models --name "$ds-random-n$n-s$s" --max-params "$budget" --seconds "$secs" --seed "$s" --json --quiet
		done
	done
done

"$SUM" report "$RESULTS" >"$RESULTS/summary.md"
echo "tables: $RESULTS/summary.md" >&2
