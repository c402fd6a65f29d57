#!/usr/bin/env bash
# The speed benchmarks on a GPU (issue 18, target 5): the same scripts as on a CPU, unchanged but for
# --device cuda (bf16 backbone), one at a time, most important first. Each publishes its own
# section named for the GPU (speed_vs_peft_h200, time_to_accuracy_h200, generation_speed_h200,
# cost_curves_h200) beside the CPU sections, which it leaves alone. speed_vs_peft runs every row
# once unrecorded first (a first process pays the GPU's first use) and profiles each row; its
# second entry is an A/B trial: prompt tuning with sdpa kept off cuDNN attention, whose
# per-shape set-up is the leading suspect for tasktune's slow steps on the H200.
# Usage: bash benchmarks/run_gpu.sh
#   LIMITS="300 120 240 100 140": wall-second limit of each entry (timeout; a stopped time_to_accuracy
#   keeps the runs it finished, marked partial; the others publish at their end; "-": skip it);
#   AFTER: a command run after each entry (e.g. copy the results off a machine that is about to go
#   away); PEFT_SETUPS=tuned: speed_vs_peft without PEFT's default-setup rows.
set -u
cd "$(dirname "$0")/.."
read -r -a limits <<< "${LIMITS:-0 0 0 0 0}"
i=0
for b in "speed_vs_peft.py --steps 20 --eval-n 256 --dtypes bfloat16 --peft-setups ${PEFT_SETUPS:-tuned,defaults} --warm-round --profile" \
         "speed_vs_peft.py --steps 20 --eval-n 256 --dtypes bfloat16 --peft-setups tuned --methods prompt --warm-round --profile --no-cudnn-sdp" \
         "time_to_accuracy.py --dtype bfloat16 --prune --tasktune-lrs 1e-2,3e-2,1e-1 --peft-lora-lrs 3e-3,1e-3,1e-2 --peft-prompt-lrs 3e-2,1e-2,1e-1" \
         "generation_speed.py --sources 32 --batch 16 --beams-list 1,5" \
         "cost_curves.py --models smollm2-135m --steps 5"; do
  limit=${limits[$i]:-0}; i=$((i + 1))
  [ "$limit" = "-" ] && continue
  echo "=== $b --device cuda ($(date -u +%H:%M:%S), limit ${limit}s)"
  # shellcheck disable=SC2086
  timeout "$limit" python benchmarks/$b --device cuda || echo "=== FAILED or stopped: $b"
  ${AFTER:-true}
done
