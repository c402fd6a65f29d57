#!/usr/bin/env bash
# Every benchmark, one after another (never two at once: they share the CPU), most important first.
# Usage: bash benchmarks/run_all.sh  (each script rewrites its own section of docs/BENCHMARKS.md)
set -u
cd "$(dirname "$0")/.."
# The settings are the ones behind docs/BENCHMARKS.md, sized to fit one session on a 2-core CPU.
for b in "speed_vs_peft.py --steps 8 --eval-n 128" "memory.py" "icl.py --probe-n 20 --seeds 3" \
         "facts_probing.py --steps 80" "fewglue_and_stability.py --steps 40 --ft-steps 20" "parity.py" \
         "e2e_generation.py --steps 60 --tables 20" "ppt_fewshot.py --ppt-steps 80 --steps 30" \
         "sst2_prompt_tuning.py --steps 300"; do
  if [ -n "${SKIP:-}" ] && [[ "$b" =~ ${SKIP} ]]; then continue; fi
  echo "=== $b ($(date -u +%H:%M:%S))"
  python benchmarks/$b || echo "=== FAILED: $b"
done
