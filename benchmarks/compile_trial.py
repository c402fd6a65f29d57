"""torch.compile (`tasktune train --compile`) against eager: step, evaluation, compile cost, time to accuracy.

    python benchmarks/compile_trial.py --mode eager|compiled [--cache DIR]   (one process, printed)
    python benchmarks/compile_trial.py --report                              (everything below, one
                                                                              process each; writes the docs)

Part 1, the step: prompt tuning on the SST-2 batches of speed_vs_peft.py (bf16 backbone, batches of
16 in length-sorted pieces of at most 768 tokens, the soft prompt run once per step), eager and
compiled through `tasktune.backbone.compiled` (the code path of --compile). Compiled runs twice:
with an empty inductor cache (a machine's first run) and again with the cache it left (every later
run). Each reports its first step (compile included), the median of steps 3 and later, MFU
(4 N T, speed_vs_peft.py's count) against this machine's bf16 GEMM peak, and the evaluation speed
on 128 dev sentences as a --compile run evaluates (eager), then with the evaluation compiled too
(its first pass compiles the no-grad graphs). The
update is checked against eager: cosine of the first step's gradient, and the losses.

Part 2, time to accuracy (PROTOCOLS.md): `tasktune train` eager and `--compile` (empty cache, then
warm), lr 3e-2, to 0.88 on the whole SST-2 dev set, with PEFT LoRA r=8 at its best rate of the
time-to-accuracy sweep (3e-3) beside them, all in this run on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed_vs_peft import LR, batches, harness_task, nonembedding_params, train_steps  # noqa: E402

STEPS = 12
EVAL_N = 128


def child(args) -> None:
    from device_clock import now

    from tasktune.backbone import load_backbone
    from tasktune.backbone.compiled import compiled

    if args.cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.cache
    bb = load_backbone("smollm2-135m", "bfloat16")
    data, steps = batches(args.steps)
    task = harness_task(bb, "prompt", data.labels)
    first_grad: list[torch.Tensor] = []  # the summed gradient of step 0, read just before its update

    def snapshot(optimizer, *_):
        if not first_grad:
            first_grad.append(task.module.prompt.grad.detach().float().clone())

    hook = register_optimizer_step_pre_hook(snapshot)
    def timed_eval() -> float:
        t = now("cpu")
        task.predict_scores(data.dev[:EVAL_N], 32)
        return now("cpu") - t

    with compiled(bb.model, args.mode == "compiled"):
        runs = train_steps(task, steps, LR["prompt"])
        hook.remove()
        evals = [timed_eval(), timed_eval()]  # as a --compile run evaluates: eager
    inference = []
    if args.mode == "compiled":  # the evaluation compiled too (not the default): its compile, then its speed
        with compiled(bb.model, inference=True):
            inference = [timed_eval(), timed_eval()]
    times = [t for t, _, _ in runs]
    shared = task.prefix_cache.shared_length
    processed = [sum(b.ids.numel() - len(b) * shared(b) for b in bs) + max(shared(b) for b in bs) for _, bs, _ in runs]
    n = nonembedding_params(bb.model)
    later = range(3, len(runs))
    if args.grad_out:
        save_file({"grad": first_grad[0]}, args.grad_out)
    print("RESULT " + json.dumps({
        "mode": args.mode, "first_step_s": times[0], "median_step_s": statistics.median(times[i] for i in later),
        "flops_s": 4 * n * sum(processed[i] for i in later) / sum(times[i] for i in later),
        "eval_ex_s": EVAL_N / evals[1], "compiled_eval_first_pass_s": inference[0] if inference else None,
        "compiled_eval_ex_s": EVAL_N / inference[1] if inference else None, "losses": [loss for _, _, loss in runs]}))


def run_child(mode: str, cache: str, grad_out: Path) -> dict:
    cmd = [sys.executable, __file__, "--mode", mode, "--steps", str(STEPS), "--cache", cache, "--grad-out",
           str(grad_out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(line[0][7:])


def report() -> None:
    from device_clock import gemm_peak
    from time_to_accuracy import DATA, TEMPLATE, run_peft, run_tasktune_cmd

    from tasktune.provenance import git_commit

    commit = git_commit()
    peak = gemm_peak(torch.bfloat16)
    work = Path(tempfile.mkdtemp(prefix="compile-trial-"))
    rows = []
    for label, mode, cache in (("eager", "eager", ""), ("compiled, empty cache", "compiled", str(work / "c1")),
                               ("compiled, warm cache", "compiled", str(work / "c1"))):
        r = run_child(mode, cache, work / f"grad-{len(rows)}.safetensors")
        r["setup"], r["MFU"] = label, r["flops_s"] / peak
        rows.append(r)
        print({k: v for k, v in r.items() if k != "losses"}, flush=True)
    grads = [load_file(str(work / f"grad-{i}.safetensors"))["grad"] for i in range(len(rows))]
    for r, g in zip(rows, grads, strict=True):
        r["first-step gradient cosine vs eager"] = float(torch.nn.functional.cosine_similarity(
            g.flatten(), grads[0].flatten(), dim=0))
        r["largest loss difference vs eager"] = max(abs(a - b) for a, b in zip(r["losses"], rows[0]["losses"],
                                                                                 strict=True))
    tta = []
    ns = argparse.Namespace(data=DATA, threshold=0.88, max_steps=300, eval_every=25, dtype="auto", device="cpu",
                            dev_n=0)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(work / "c2")
    for label, options in (("tasktune prompt tuning, eager", []), ("tasktune prompt tuning, --compile, empty cache",
                                                                   ["--compile"]),
                           ("tasktune prompt tuning, --compile, warm cache", ["--compile"])):
        curve, total = run_tasktune_cmd(DATA, work / f"run-{len(tta)}", TEMPLATE, ["--lr", "0.03", *options], 0.88,
                                        300, 25, "auto", "cpu")
        tta.append(_tta_row(label, 0.03, curve, total))
        print(tta[-1], flush=True)
    for label, method, lr in (("PEFT LoRA r=8 q,v", "lora", 3e-3),):
        curve, total = run_peft(ns, method, lr)
        tta.append(_tta_row(label, lr, curve, total))
        print(tta[-1], flush=True)
    publish(rows, tta, peak, commit)


def _tta_row(label: str, lr: float, curve: list[dict], total: float) -> dict:
    hit = next((e for e in curve if e["accuracy"] >= 0.88), None)
    return {"run": label, "lr": lr, "curve": curve, "run_seconds": total,
            "reached_step": hit["step"] if hit else None, "seconds_to_threshold": hit["seconds"] if hit else None}


def publish(rows: list[dict], tta: list[dict], peak: float, commit: str) -> None:
    from report import table, write_section

    eager, cold, warm = rows
    shown = [{"setup": r["setup"], "first step (compile included) s": r["first_step_s"],
              "median step s": r["median_step_s"], "MFU": f"{r['MFU']:.0%}",
              "evaluation sentences/s": r["eval_ex_s"],
              "compiled evaluation: first pass s": r["compiled_eval_first_pass_s"] or "",
              "compiled evaluation sentences/s": r["compiled_eval_ex_s"] or "",
              "gradient cosine vs eager": f"{r['first-step gradient cosine vs eager']:.4f}",
              "largest loss difference": f"{r['largest loss difference vs eager']:.3f}"} for r in rows]
    saved = eager["median_step_s"] - warm["median_step_s"]
    cost = warm["first_step_s"] - eager["first_step_s"]
    payback = f"pays back after about {cost / saved:,.0f} steps" if saved > 0 else "never pays back"
    tta_rows = [{"run": r["run"], "lr": r["lr"], "seconds to 0.88": (f"{r['seconds_to_threshold']:.0f}"
                                                                   if r["seconds_to_threshold"] is not None
                                                                   else f"> {r['run_seconds']:.0f}"),
                 "step": r["reached_step"] or "", "best dev accuracy": f"{max(e['accuracy'] for e in r['curve']):.3f}"}
                for r in tta]
    body = (f"Part 1: the step. bf16 GEMM peak (2048^3) {peak / 1e9:.0f} GFLOP/s. Prompt tuning, {STEPS} SST-2 "
            "batches of 16 (speed_vs_peft.py's), each setup its own process; the warm-cache run reuses the cache "
            "the empty-cache run filled.\n\n"
            + table(shown, list(shown[0]))
            + f"\n\nCompiled (warm cache) the step is {eager['median_step_s'] / warm['median_step_s']:.2f}x faster; "
            f"the compile costs {cost:.0f} s a run once cached ({cold['first_step_s'] - eager['first_step_s']:.0f} s "
            f"the first time): it {payback}. The update is eager's up to bf16 rounding (gradient cosine above; "
            "fp32 equality is tests/test_compiled.py's). A `--compile` run evaluates eagerly (the evaluation "
            "columns); the last two columns compile the evaluation too, the first pass paying its compile.\n\n"
            "Part 2: time to 0.88 on the whole SST-2 dev set (the time-to-accuracy protocol), in this run; "
            "PEFT LoRA at its best rate of the time-to-accuracy sweep (the faster PEFT method on an AMX Xeon in "
            "issue 18's measurement).\n\n"
            + table(tta_rows, list(tta_rows[0])))
    write_section("compile_trial", "torch.compile: the step, its cost, and time to accuracy",
                  "python benchmarks/compile_trial.py --report", body,
                  {"peak_bf16_flops": peak, "rows": rows, "time_to_accuracy": tta}, commit=commit)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="eager", choices=["eager", "compiled"])
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--cache", default="", help="inductor cache folder (default: tasktune's)")
    ap.add_argument("--grad-out", default="", help="write step 0's gradient here (safetensors)")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        return report()
    child(args)


if __name__ == "__main__":
    main()
