#!/usr/bin/env bash
# Every benchmark, one after another (never two at once: they share the CPU), most important first.
# Usage: bash benchmarks/run_all.sh  (each script rewrites its own section of docs/BENCHMARKS.md)
set -u
cd "$(dirname "$0")/.."
for b in "speed_vs_peft.py --steps 8 --eval-n 128" "icl.py --probe-n 40 --seeds 3" "facts_probing.py --steps 200" \
         "parity.py" "e2e_generation.py --steps 150" "ppt_fewshot.py" "fewglue_and_stability.py" \
         "sst2_prompt_tuning.py --steps 300"; do
  if [ -n "${SKIP:-}" ] && [[ "$b" =~ ${SKIP} ]]; then continue; fi
  echo "=== $b ($(date -u +%H:%M:%S))"
  python benchmarks/$b || echo "=== FAILED: $b"
done
