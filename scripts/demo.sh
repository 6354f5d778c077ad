#!/usr/bin/env bash
# `make demo`: the whole flow end to end on the built-in simulator.
#   simulate a world -> dormant cohort -> churn early warning (risk model, levels) -> power
#   -> assign (+ checks) -> export contact lists
#   -> the world responds -> four weekly reports (HTML) -> uplift model -> next campaign's policy,
#   its off-policy estimate and its true value from the simulator -> the final report with all
#   -> a year on: the long run and the programme against the global holdout
# Usage: scripts/demo.sh [CLI] [OUT]. The worked spec reads ../reports/demo/world, so OUT must be
# reports/demo (the default) for the spec's relative path to find the world.
set -euo pipefail
CLI=${1:-upliftlab}
OUT=${2:-reports/demo}
SPEC=experiments/reactivation_2026q1.toml
STORE="$OUT/upliftlab.duckdb"
CUSTOMERS=${DEMO_CUSTOMERS:-200000}
export UPLIFTLAB_STORE="$STORE"

# each step's wall time, printed at the end (benchmarks/bench_demo.py records them)
TIMES=()
STEP_NAME=""
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $((ms / 1000)) $(((ms % 1000) / 100)); }
STEP_START=$(now_ms)
DEMO_START=$STEP_START
close_step() {
    if [ -n "$STEP_NAME" ]; then
        TIMES+=("$(printf '%8s s  %s' "$(secs "$STEP_START")" "$STEP_NAME")")
    fi
    STEP_START=$(now_ms)
}
if [ -t 1 ]; then step() { close_step; STEP_NAME="$1"; printf '\n\033[1m== %s\033[0m\n' "$*"; }
else step() { close_step; STEP_NAME="$1"; printf '\n== %s\n' "$*"; }; fi

rm -rf "$OUT" && mkdir -p "$OUT"

step "1. Simulate a customer world ($CUSTOMERS customers, two years of transactions, known uplift)"
"$CLI" simulate --n-customers "$CUSTOMERS" --seed 7 --out "$OUT/world"

step "2. The dormant cohort as of the campaign date"
"$CLI" cohort --transactions "$OUT/world/transactions.parquet" --as-of 2026-01-05 \
    --out "$OUT/cohort.parquet"

step "2b. Early warning: who is still active but on the way to dormancy (churn risk)"
# trained on past snapshots, compared out of time (2025-11-06) with the overdue rule, BG/NBD and
# the simulator's true probabilities; then the active customers at the campaign date by level
"$CLI" risk fit --transactions "$OUT/world/transactions.parquet" --as-of 2025-11-06 \
    --horizon 60 --snapshots 2 --bootstrap 100 --world "$OUT/world" --out "$OUT/risk-model"
"$CLI" risk score --model "$OUT/risk-model" --transactions "$OUT/world/transactions.parquet" \
    --as-of 2026-01-05 --out "$OUT/at_risk.parquet"

step "3. Power: can the campaign detect the effects we care about?"
"$CLI" power "$SPEC" --store "$STORE"

step "4. Assign the cohort to control / coupon / content / advisor (deterministic, stratified)"
"$CLI" assign "$SPEC" --store "$STORE"
"$CLI" assign "$SPEC" --store "$STORE"   # idempotent: a second run changes nothing
"$CLI" checks "$SPEC" --store "$STORE"   # the same checks again, at any time
"$CLI" export "$SPEC" --store "$STORE" --out "$OUT/contacts"

step "5. The campaign runs: the simulated world responds to the assignment"
"$CLI" respond --world "$OUT/world" --store "$STORE" --experiment reactivation_2026q1 \
    --out "$OUT/world/transactions_post.parquet" --touches "$OUT/world/touches.parquet"

# the touch funnel and the effect on the customers reached come from the spec's [touches] log
step "6. Four weekly reports (sequential analysis: valid although we look every week)"
for day in 2026-01-12 2026-01-19 2026-01-26 2026-02-02; do
    echo "-- week ending $day"
    "$CLI" report "$SPEC" --as-of "$day" --store "$STORE" --out "$OUT/report-$day"
done

step "7. Uplift model: for whom does each treatment work? (the learners whose rankings earn most out of fold)"
# a small grid (the s and glm learners with small base models, 3 folds) keeps the demo
# quick; `model fit` without --candidates/--base-models compares s, t, x, glm x small, large (README)
"$CLI" model fit "$SPEC" --as-of 2026-03-06 --store "$STORE" --candidates s,glm \
    --base-models small --folds 3 --bootstrap 100 --out "$OUT/model"
"$CLI" model score --model "$OUT/model" --customers "$OUT/cohort.parquet" \
    --out "$OUT/scores.parquet"

step "8. The next campaign: best treatment per customer under a budget and the advisors' capacity"
# learned and valued on the experiment's out-of-fold scores (honest off-policy estimate of the
# plan as written, exploration included: 5% of the budget and of the advisors' capacity is
# reserved for customers assigned at random); the simulator's truth then reveals what the
# written plan is really worth; the cohort's tiers and revenue profile who gets what
"$CLI" policy --scores "$OUT/model/oof_scores.parquet" --data "$OUT/model/oof_scores.parquet" \
    --budget 20000 --cost coupon=0.10:10 --cost content=0.02 --cost advisor=4 \
    --capacity advisor=3000 --explore-budget 5% --customers "$OUT/cohort.parquet" \
    --truth "$OUT/world/truth.parquet" --out "$OUT/policy"

step "9. The outcome windows have closed (60 days): the final, fixed-horizon report"
"$CLI" report "$SPEC" --as-of 2026-03-06 --store "$STORE" \
    --model "$OUT/model" --policy "$OUT/policy" --out "$OUT/report-final"

step "10. A year on: the world lives on, and the programme report against the global holdout"
# a fresh draw of the twelve months after the start, in which the arms also change how long a
# reactivated customer stays active (an advisor's customers stay longer than a coupon's)
"$CLI" respond-long-run --world "$OUT/world" --store "$STORE" --experiment reactivation_2026q1 \
    --days 365 --out "$OUT/longrun/transactions.parquet"
"$CLI" programme --store "$STORE" --as-of 2027-01-05 \
    --transactions "$OUT/world/transactions.parquet" \
    --transactions "$OUT/longrun/transactions.parquet" \
    --customers "$OUT/world/customers.parquet" --out "$OUT/programme"
close_step

echo
echo "Step times (wall clock):"
printf '%s\n' "${TIMES[@]}"
printf '%8s s  total\n' "$(secs "$DEMO_START")"
echo
echo "Open the reports: $OUT/report-final/report.html (and the weekly $OUT/report-2026-*/),"
echo "the churn-risk report $OUT/risk-model/report.html"
echo "and the programme report: $OUT/programme/report.html"
