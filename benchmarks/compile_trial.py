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
and MFU (2 N T) on 128 dev sentences at the default evaluation batch as a --compile run evaluates
(eager), then with the evaluation compiled too (its first pass compiles the no-grad graphs). The
update is checked against eager: cosine of the first step's gradient, and the losses.

Part 2, time to accuracy (PROTOCOLS.md): `tasktune train` eager and `--compile` (empty cache, then
warm), lr 3e-2, to 0.88 on the whole SST-2 dev set, with PEFT LoRA r=8 at its best rate of the
time-to-accuracy sweep (3e-3) beside them, all in this run on this machine.

Each kind of matrix unit (AMX, AVX-512 BF16, ...) publishes its own section, compile_trial_<isa>.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_clock import peak_gb  # noqa: E402
from env_ab import cosine  # noqa: E402
from speed_vs_peft import LR, batches, harness_task, nonembedding_params, timed_eval, train_steps  # noqa: E402

from report import child_result, machine  # noqa: E402

STEPS = 12
EVAL_N = 128


def child(args) -> None:
    from tasktune.backbone import load_backbone
    from tasktune.backbone.compiled import compiled
    from tasktune.engine.batch import EVAL_BATCH_SIZE

    if args.cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.cache
    torch.manual_seed(0)  # P-tuning's prompt encoder has dropout: the same masks in every process
    bb = load_backbone("smollm2-135m", "bfloat16")
    data, steps = batches(args.steps)
    task = harness_task(bb, args.method, data.labels)
    first_grad: list[torch.Tensor] = []  # the summed gradient of step 0, read just before its update

    def snapshot(optimizer, *_):
        if not first_grad:
            first_grad.append(torch.cat([p.grad.detach().float().flatten() for p in task.module.trainable()
                                         if p.grad is not None]))

    hook = register_optimizer_step_pre_hook(snapshot)
    def evaluate() -> tuple[float, int]:  # seconds and tokens run, at the default evaluation batch
        return timed_eval(task, data.dev[:EVAL_N], EVAL_BATCH_SIZE)

    with compiled(bb.model, args.mode == "compiled"):
        runs = train_steps(task, steps, LR[args.method])
        hook.remove()
        evals = [evaluate(), evaluate()]  # as a --compile run evaluates: eager
    inference = []
    if args.mode == "compiled":  # the evaluation compiled too (not the default): its compile, then its speed
        with compiled(bb.model, inference=True):
            inference = [evaluate(), evaluate()]
    times = [t for t, _, _ in runs]
    shared = task.prefix_cache.shared_length if task.prefix_cache is not None else (lambda b: 0)
    processed = [sum(b.ids.numel() - len(b) * shared(b) for b in bs) + max(shared(b) for b in bs) for _, bs, _ in runs]
    n = nonembedding_params(bb.model)
    later = range(3, len(runs))
    eval_s, eval_tokens = evals[1]
    if args.grad_out:
        save_file({"grad": first_grad[0]}, args.grad_out)
    print("RESULT " + json.dumps({
        "method": args.method, "mode": args.mode, "first_step_s": times[0],
        "median_step_s": statistics.median(times[i] for i in later),
        "flops_s": 4 * n * sum(processed[i] for i in later) / sum(times[i] for i in later),
        "eval_ex_s": EVAL_N / eval_s, "eval_flops_s": 2 * n * eval_tokens / eval_s,
        "compiled_eval_first_pass_s": inference[0][0] if inference else None,
        "compiled_eval_ex_s": EVAL_N / inference[1][0] if inference else None,
        "compiled_eval_flops_s": 2 * n * inference[1][1] / inference[1][0] if inference else None,
        "losses": [loss for _, _, loss in runs], "peak_rss_gb": peak_gb("cpu")}))


def run_child(method: str, mode: str, cache: str, grad_out: Path) -> dict:
    cmd = [sys.executable, __file__, "--method", method, "--mode", mode, "--steps", str(STEPS), "--cache", cache,
           "--grad-out", str(grad_out)]
    return child_result(cmd)


def step_rows(method: str, peak: float, work: Path, commit: str) -> list[dict]:
    """Eager, compiled with an empty cache, compiled again with the cache that left: one process each."""
    rows = []
    for label, mode, cache in (("eager", "eager", ""), ("compiled, empty cache", "compiled", str(work / method)),
                               ("compiled, warm cache", "compiled", str(work / method))):
        r = run_child(method, mode, cache, work / f"grad-{method}-{len(rows)}.safetensors")
        r.update(setup=label, MFU=r["flops_s"] / peak, commit=commit)
        rows.append(r)
        print({k: v for k, v in r.items() if k != "losses"}, flush=True)
    grads = [work / f"grad-{method}-{i}.safetensors" for i in range(len(rows))]
    for r, g in zip(rows, grads, strict=True):
        r["first-step gradient cosine vs eager"] = cosine(g, grads[0])
        r["largest loss difference vs eager"] = max(abs(a - b) for a, b in zip(r["losses"], rows[0]["losses"],
                                                                                 strict=True))
    return rows


def time_to_accuracy(work: Path, commit: str) -> list[dict]:
    from time_to_accuracy import DATA, TEMPLATE, run_peft, run_tasktune_cmd

    tta = []
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(work / "tta")
    for label, options in (("tasktune prompt tuning, eager", []), ("tasktune prompt tuning, --compile, empty cache",
                                                                   ["--compile"]),
                           ("tasktune prompt tuning, --compile, warm cache", ["--compile"])):
        curve, total = run_tasktune_cmd(DATA, work / f"run-{len(tta)}", TEMPLATE, ["--lr", "0.03", *options], 0.88,
                                        300, 25, "auto", "cpu")
        tta.append({**_tta_row(label, 0.03, curve, total), "commit": commit})
        print(tta[-1], flush=True)
    ns = argparse.Namespace(data=DATA, threshold=0.88, max_steps=300, eval_every=25, dtype="auto", device="cpu",
                            dev_n=0)
    curve, total = run_peft(ns, "lora", 3e-3)
    tta.append({**_tta_row("PEFT LoRA r=8 q,v", 3e-3, curve, total), "commit": commit})
    print(tta[-1], flush=True)
    return tta


def report(args) -> None:
    from device_clock import gemm_peak

    from tasktune.provenance import git_commit

    from report import ROOT, isa_section

    commit = git_commit()
    methods = args.methods.split(",")
    path = ROOT / "docs" / "results" / f"{isa_section('compile_trial')[0]}.json"
    earlier = json.loads(path.read_text()) if args.extend and path.is_file() else {}
    if earlier and earlier.get("machine", "").split(",")[0] != machine().split(",")[0]:
        sys.exit(f"--extend: {path} ran on another machine ({earlier.get('machine')})")
    peak = gemm_peak(torch.bfloat16)
    work = Path(tempfile.mkdtemp(prefix="compile-trial-"))
    kept = [{"method": "prompt", "commit": earlier.get("commit"), **r} for r in earlier.get("rows", [])]
    rows = [r for r in kept if r["method"] not in methods]
    for method in methods:
        rows += step_rows(method, peak, work, commit)
    tta = ([{"commit": earlier.get("commit"), **r} for r in earlier.get("time_to_accuracy", [])] if args.no_tta
           else time_to_accuracy(work, commit))
    publish(rows, tta, earlier.get("peak_bf16_flops", peak) if args.extend else peak, args)


def _tta_row(label: str, lr: float, curve: list[dict], total: float) -> dict:
    hit = next((e for e in curve if e["accuracy"] >= 0.88), None)
    return {"run": label, "lr": lr, "curve": curve, "run_seconds": total,
            "reached_step": hit["step"] if hit else None, "seconds_to_threshold": hit["seconds"] if hit else None}


def _share(flops: float | None, peak: float) -> str:
    return f"{flops / peak:.0%}" if flops else ""


def publish(rows: list[dict], tta: list[dict], peak: float, args) -> None:
    from report import isa_section, table, write_section

    shown = [{"method": r["method"], "setup": r["setup"], "first step (compile included) s": r["first_step_s"],
              "median step s": r["median_step_s"], "MFU": f"{r['MFU']:.0%}",
              "evaluation sentences/s": r["eval_ex_s"], "evaluation MFU": _share(r.get("eval_flops_s"), peak),
              "compiled evaluation: first pass s": r["compiled_eval_first_pass_s"] or "",
              "compiled evaluation sentences/s": r["compiled_eval_ex_s"] or "",
              "compiled evaluation MFU": _share(r.get("compiled_eval_flops_s"), peak),
              "gradient cosine vs eager": f"{r['first-step gradient cosine vs eager']:.4f}",
              "largest loss difference": f"{r['largest loss difference vs eager']:.3f}"} for r in rows]
    verdicts = []
    for method in dict.fromkeys(r["method"] for r in rows):
        eager, cold, warm = (next(r for r in rows if r["method"] == method and r["setup"] == s)
                             for s in ("eager", "compiled, empty cache", "compiled, warm cache"))
        saved = eager["median_step_s"] - warm["median_step_s"]
        cost = warm["first_step_s"] - eager["first_step_s"]
        payback = f"pays back after about {cost / saved:,.0f} steps" if saved > 0 else "never pays back"
        verdicts.append(f"{method}: the step {eager['median_step_s'] / warm['median_step_s']:.2f}x faster, the "
                        f"compile {cost:.0f} s a run once cached ({cold['first_step_s'] - eager['first_step_s']:.0f} "
                        f"s the first time): it {payback}")
    tta_rows = [{"run": r["run"], "lr": r["lr"], "seconds to 0.88": (f"{r['seconds_to_threshold']:.0f}"
                                                                   if r["seconds_to_threshold"] is not None
                                                                   else f"> {r['run_seconds']:.0f}"),
                 "step": r["reached_step"] or "", "best dev accuracy": f"{max(e['accuracy'] for e in r['curve']):.3f}"}
                for r in tta]
    body = (f"Part 1: the step. bf16 GEMM peak (2048^3) {peak / 1e9:.0f} GFLOP/s. {STEPS} SST-2 batches of 16 "
            "(speed_vs_peft.py's, its learning rate per method), each setup its own process; the warm-cache run "
            "reuses the cache the empty-cache run filled.\n\n"
            + table(shown, list(shown[0]))
            + "\n\nCompiled (warm cache) against eager: " + "; ".join(verdicts) + ". The update is eager's up to "
            "bf16 rounding (gradient cosine above; fp32 equality is tests/test_compiled.py's). A `--compile` run "
            "evaluates eagerly (the evaluation column); the next two compile the evaluation too, the first pass "
            "paying its compile.\n\n"
            "Part 2: time to 0.88 on the whole SST-2 dev set (the time-to-accuracy protocol), these runs in one "
            "run of the script; PEFT LoRA at its best rate of the time-to-accuracy sweep (the faster PEFT method "
            "on an AMX Xeon in issue 18's measurement).\n\n"
            + table(tta_rows, list(tta_rows[0])))
    command = "python benchmarks/compile_trial.py --report --methods " + (
        f"prompt; then --methods {args.methods} --extend --no-tta" if args.extend else args.methods)
    commits = ", ".join(dict.fromkeys(str(r.get("commit")) for r in [*rows, *tta]))
    name, isa = isa_section("compile_trial")
    write_section(name, f"torch.compile on {isa}: the step, its cost, and time to accuracy", command, body,
                  {"peak_bf16_flops": peak, "rows": rows, "time_to_accuracy": tta}, commit=commits)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="eager", choices=["eager", "compiled"])
    ap.add_argument("--method", default="prompt", choices=list(LR))
    ap.add_argument("--methods", default="prompt", help="--report: the methods whose step to measure")
    ap.add_argument("--no-tta", action="store_true", help="--report: keep the published time-to-accuracy runs")
    ap.add_argument("--extend", action="store_true", help="--report: keep the published rows of other methods")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--cache", default="", help="inductor cache folder (default: tasktune's)")
    ap.add_argument("--grad-out", default="", help="write step 0's gradient here (safetensors)")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        return report(args)
    child(args)


if __name__ == "__main__":
    main()
