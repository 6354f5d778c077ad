#!/usr/bin/env bash
# make demo: the whole flow end to end on the built-in simulator.
set -euo pipefail
CLI=${1:-upliftlab}
OUT=${2:-reports/demo}
mkdir -p "$OUT"
echo "demo: (steps land with the issues)"
