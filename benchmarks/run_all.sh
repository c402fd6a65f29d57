#!/usr/bin/env bash
# Every benchmark script and the committed comparison configs, one after another (never two at once:
# they share the CPU), most important first. Each script rewrites its own section of
# docs/BENCHMARKS.md and its results file under docs/results/; `tasktune report --check` then confirms
# the generated sections equal their results.
# Usage: bash benchmarks/run_all.sh           (SKIP='regex' leaves out the matching entries)
# The settings are the ones behind docs/BENCHMARKS.md, sized for a 2-core CPU; the whole list takes
# several hours there (days for the GPU-sized grids: sst2, e2e, webnlg). Long entries are last.
set -u
cd "$(dirname "$0")/.."
for b in "speed_vs_peft.py --steps 8 --eval-n 128" "memory.py" "serve_scale.py" "cost_curves.py" \
         "gemm_shapes.py" "auto_dtype.py --rounds 2" "load_time.py --runs 3" "compile_trial.py --report" "allocator_trial.py --rounds 2" \
         "fusion_trial.py --rounds 3" "packing_trial.py --rounds 3" "last_layer_trial.py --rounds 3" "eval_batch_trial.py --rounds 2" \
         "serve_load.py --requests 1000 --clients 32" "parity.py --train-steps 150" "parity.py --noise-floor 150" \
         "icl.py --probe-n 20 --seeds 3" "facts_probing.py --steps 80" \
         "fewglue_and_stability.py --steps 40 --ft-steps 20" \
         "generation_speed.py --sources 16 --batch 8" "decode_batch_trial.py --rounds 2" "e2e_generation.py --steps 60 --dataset e2e" \
         "e2e_generation.py --steps 60 --tables 30 --dataset webnlg" \
         "ppt_fewshot.py --ppt-steps 80 --steps 30 --ppt-task pair" "smart_magnitude.py" \
         "sst2_prompt_tuning.py --steps 300" "smart_sst.py --steps 60 --seeds 3 --datasets sst2,sst5" \
         "smart_sst.py --steps 60 --seeds 3 --datasets sst2 --radius 0.1" "time_to_accuracy.py" \
         "convergence.py --datasets sst2 --seeds 0 --cap 150" \
         "convergence.py --datasets sst2 --configs default,class-label,class-label-warmup2 --seeds 1 --cap 150 --extend" \
         "convergence.py --datasets trec,subj --configs default,class-label,class-label-warmup2,warmup2 --seeds 0,1 --cap 100 --extend"; do
  if [ -n "${SKIP:-}" ] && [[ "$b" =~ ${SKIP} ]]; then continue; fi
  echo "=== $b ($(date -u +%H:%M:%S))"
  python benchmarks/$b || echo "=== FAILED: $b"
done
for config in docs/experiments/sst2_cpu.toml docs/experiments/facts.toml docs/experiments/scale.toml \
              docs/experiments/sst2.toml docs/experiments/e2e.toml docs/experiments/webnlg.toml; do
  if [ -n "${SKIP:-}" ] && [[ "$config" =~ ${SKIP} ]]; then continue; fi
  name=$(basename "$config" .toml)
  echo "=== compare $config ($(date -u +%H:%M:%S))"
  tasktune compare "$config" --output "docs/results/compare/$name" || echo "=== FAILED: $config"
done
tasktune report --check
