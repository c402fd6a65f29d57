"""torch.compile trial on the training step: eager vs compiled backbone (inductor, dynamic
shapes), prompt or prefix tuning on the SST-2 batches of speed_vs_peft.py; prints each step's
time, the compile time (step 0) and the median of steps 3 and later.

    python benchmarks/compile_trial.py --mode eager --method prompt
    python benchmarks/compile_trial.py --mode default --method prompt
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed_vs_peft import LR, batches, harness_task, train_steps  # noqa: E402

from tasktune.backbone import load_backbone  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="eager", help="eager | default | max-autotune")
    ap.add_argument("--method", default="prompt", choices=["prompt", "prefix"])
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    bb = load_backbone("smollm2-135m")
    if args.mode != "eager":
        inner = bb.model.model
        inner.forward = torch.compile(inner.forward, dynamic=True, mode=None if args.mode == "default" else args.mode)
    data, steps = batches(args.steps)
    runs = train_steps(harness_task(bb, args.method, data.labels), steps, LR[args.method])
    for i, (seconds, pieces, loss) in enumerate(runs):
        print(i, [tuple(b.ids.shape) for b in pieces], f"{seconds:.2f} s, loss {loss:.3f}", flush=True)
    times = [t for t, _, _ in runs]
    median = statistics.median(times[3:])
    print(args.mode, args.method, f"first step {times[0]:.1f} s, median of steps 3+: {median:.3f} s")


if __name__ == "__main__":
    main()
