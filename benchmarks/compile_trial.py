"""torch.compile trial on the training step: eager vs compiled backbone (inductor, dynamic
shapes), prompt or prefix tuning on the SST-2 batches of speed_vs_peft.py; prints each step's
time, the compile time (step 0) and the median of steps 3 and later.

    python benchmarks/compile_trial.py --mode eager --method prompt     (one mode, printed)
    python benchmarks/compile_trial.py --report                        (eager and default, each in its own
                                                                        process; writes the docs section)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        return report(args)
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
    print("RESULT " + json.dumps({"mode": args.mode, "method": args.method, "first_step_s": times[0],
                                  "median_step_s": median, "losses": [loss for _, _, loss in runs]}))


def report(args) -> None:
    from report import table, write_section

    rows = []
    for mode in ("eager", "default"):
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--method", args.method, "--steps",
                               str(args.steps)], capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            raise SystemExit(proc.stderr[-2000:])
        rows.append(json.loads(line[0][7:]))
    eager, compiled = rows
    saved = eager["median_step_s"] - compiled["median_step_s"]
    cost = compiled["first_step_s"] - eager["first_step_s"]
    payback = f"pays back after about {cost / saved:,.0f} steps" if saved > 0 else "never pays back"
    drift = max(abs(a - b) for a, b in zip(eager["losses"], compiled["losses"], strict=True))
    body = (f"{args.method} tuning, bf16 backbone, the {args.steps} SST-2 batches of 16 of speed_vs_peft.py; "
            "`torch.compile(model.model.forward, dynamic=True)` (inductor, C++ backend), each mode in its own "
            "process.\n\n" + table([{"mode": r["mode"], "first step (compile) s": r["first_step_s"],
                                      "median step, steps 3+ s": r["median_step_s"]} for r in rows],
                                     ["mode", "first step (compile) s", "median step, steps 3+ s"])
            + f"\n\nCompiling changes a step by {-saved / eager['median_step_s']:+.1%} and costs {cost:.0f} s up "
            f"front: it {payback}. Largest loss difference from eager over the {args.steps} steps: {drift:.2g}.")
    write_section("compile_trial", "torch.compile on the training step",
                  f"python benchmarks/compile_trial.py --report --method {args.method} --steps {args.steps}", body,
                  {"rows": rows})


if __name__ == "__main__":
    main()
