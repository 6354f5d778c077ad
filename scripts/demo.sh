#!/usr/bin/env bash
# `make demo`: the whole flow end to end on the built-in simulator.
#   simulate a world -> dormant cohort -> power -> assign (+ checks) -> export contact lists
#   -> the world responds -> four weekly reports (HTML) -> uplift model -> next campaign's policy,
#   its off-policy estimate and its true value from the simulator -> the final report with all
# Usage: scripts/demo.sh [CLI] [OUT]. The worked spec reads ../reports/demo/world, so OUT must be
# reports/demo (the default) for the spec's relative path to find the world.
set -euo pipefail
CLI=${1:-upliftlab}
OUT=${2:-reports/demo}
SPEC=experiments/reactivation_2026q1.toml
STORE="$OUT/upliftlab.duckdb"
CUSTOMERS=${DEMO_CUSTOMERS:-200000}
export UPLIFTLAB_STORE="$STORE"

if [ -t 1 ]; then step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else step() { printf '\n== %s\n' "$*"; }; fi

rm -rf "$OUT" && mkdir -p "$OUT"

step "1. Simulate a customer world ($CUSTOMERS customers, two years of transactions, known uplift)"
"$CLI" simulate --customers "$CUSTOMERS" --seed 7 --out "$OUT/world"

step "2. The dormant cohort as of the campaign date"
"$CLI" cohort --transactions "$OUT/world/transactions.parquet" --as-of 2026-01-05 \
    --out "$OUT/cohort.parquet"

step "3. Power: can the campaign detect the effects we care about?"
"$CLI" power "$SPEC" --store "$STORE"

step "4. Assign the cohort to control / coupon / content / advisor (deterministic, stratified)"
"$CLI" assign "$SPEC" --store "$STORE"
"$CLI" assign "$SPEC" --store "$STORE"   # idempotent: a second run changes nothing
"$CLI" export "$SPEC" --store "$STORE" --out "$OUT/contacts"

step "5. The campaign runs: the simulated world responds to the assignment"
"$CLI" respond --world "$OUT/world" --store "$STORE" --experiment reactivation_2026q1 \
    --out "$OUT/world/transactions_post.parquet"

step "6. Four weekly reports (sequential analysis: valid although we look every week)"
for day in 2026-01-12 2026-01-19 2026-01-26 2026-02-02; do
    echo "-- week ending $day"
    "$CLI" report "$SPEC" --as-of "$day" --store "$STORE" \
        --transactions "$OUT/world/transactions*.parquet" --out "$OUT/report-$day"
done

step "7. Uplift model: for whom does each treatment work? (per arm, the learner whose policy earns most out of fold)"
# a small grid keeps the demo quick; `model fit` without --candidates compares s,t,x
"$CLI" model fit "$SPEC" --as-of 2026-03-06 --store "$STORE" \
    --transactions "$OUT/world/transactions*.parquet" --candidates s,t --base-models small,large \
    --folds 3 --bootstrap 100 --out "$OUT/model"
"$CLI" model score --model "$OUT/model" --customers "$OUT/cohort.parquet" \
    --out "$OUT/scores.parquet"

step "8. The next campaign: best treatment per customer under a budget and the advisors' capacity"
# learned and valued on the experiment's out-of-fold scores (honest off-policy estimate of the
# plan as written, exploration included: 5% of the budget and of the advisors' capacity is
# reserved for customers assigned at random); the simulator's truth then reveals what the
# written plan is really worth; the cohort's tiers and revenue profile who gets what
"$CLI" policy --scores "$OUT/model/oof_scores.parquet" --experiment "$OUT/model/oof_scores.parquet" \
    --budget 20000 --cost coupon=0.10:10 --cost content=0.02 --cost advisor=4 \
    --capacity advisor=3000 --explore-budget 5% --customers "$OUT/cohort.parquet" \
    --truth "$OUT/world/truth.parquet" --out "$OUT/policy"

step "9. The outcome windows have closed (60 days): the final, fixed-horizon report"
"$CLI" report "$SPEC" --as-of 2026-03-06 --store "$STORE" \
    --transactions "$OUT/world/transactions*.parquet" \
    --model "$OUT/model" --policy "$OUT/policy" --out "$OUT/report-final"

echo
echo "Open the reports: $OUT/report-final/report.html (and the weekly $OUT/report-2026-*/)"
