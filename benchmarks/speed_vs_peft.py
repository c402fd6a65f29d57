"""Training and evaluation speed and peak memory: tasktune vs PEFT, side by side in one run.

    python benchmarks/speed_vs_peft.py [--steps 8] [--eval-n 128]

Same machine, model (embedded SmolLM2-135M, same weights from tasktune's safetensors cache),
data (SST-2 train batches of 16 with their natural lengths, identical batches for every
run), 20 virtual tokens, verbalizer loss on the label word. Each configuration runs in its
own process so peak RSS is its own. One warm-up step, then the median of the rest. tasktune
splits each batch of 16 as its trainer does on CPU (equal length-sorted pieces of at most 768
padded tokens, gradients summed: the same update, less padding, bounded activation memory), and
runs the soft prompt, the same in every row, once per step for all pieces.

PEFT runs in two setups (peft_peer.py): "tuned" (the headline, what a careful user does on this
CPU: the same backbone dtype, eager attention, the loss from the label position's logits only)
and "defaults" (second rows: PEFT's documented causal-LM usage, the LM head over every position,
sdpa attention). With --device cuda the same runs go to the GPU (peak memory: the allocator's
peak device memory; PEFT tuned keeps sdpa there, whose fused kernels win on a GPU) and publish
speed_vs_peft_<gpu>. Both evaluate at batch 32, reading the label words at each row's last position.

Each kind of matrix unit (AMX, AVX-512 BF16, ...) publishes its own section, speed_vs_peft_<isa>.

MFU: model FLOPs per training step = 4 * N * T, where N = non-embedding backbone parameters
and T = tokens run through the layers (padding included; a soft prompt shared by every row
runs once per optimizer step, so counts once): 2NT for the forward and 2NT
for the backward to the inputs (a frozen backbone computes no weight gradients). Attention
score FLOPs and the LM head at the read positions are left out (under 3% here). Evaluation MFU:
2 * N * T over the evaluation's batches (padding included, the shared prompt once: its KV is
computed once and reused).
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
from device_clock import gemm_peak, now, peak_gb  # noqa: E402
from peft_peer import INIT_TEXT, TEMPLATE  # noqa: E402

from report import isa_section, table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
LR = {"prompt": 3e-2, "prefix": 1e-2, "ptuning": 1e-3}


def batches(steps: int, size: int = 16):
    from tasktune.data import load_splits

    data = load_splits(str(DATA))
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data.train), generator=gen).tolist()
    return data, [[data.train[i] for i in perm[k * size:(k + 1) * size]] for k in range(steps)]


def train_steps(task, steps, lr: float, max_tokens: int = -1) -> list[tuple[float, list, float]]:
    """One fused-AdamW step per list of examples, split into length-sorted micro-batches of at most
    `max_tokens` padded tokens as tasktune's trainer does (-1: its default, 768 on a CPU, whole
    batches on a GPU): (seconds, batches, loss) each."""
    from tasktune.engine.batch import micro_batches
    from tasktune.train.sampler import encoded_lengths

    opt = torch.optim.AdamW(task.module.parameters(), lr=lr, weight_decay=1e-5, fused=True)
    out = []
    device = task.backbone.device
    if max_tokens < 0:
        max_tokens = 768 if device.type == "cpu" else 0
    for exs in steps:
        t = now(device)
        encoded = [task.objective.encode(ex) for ex in exs]
        done, total = [], 0.0
        with task.optimizer_step():  # the shared soft prompt runs once per step, as in the trainer
            for piece in micro_batches(list(range(len(exs))), encoded_lengths(encoded), max_tokens):
                batch, labels = task.objective.collate([encoded[i] for i in piece], task.pad_id)
                batch, labels = batch.to(device), labels.to(device)
                loss = task.objective.loss(task.scores(batch), labels) * len(piece) / len(exs)
                loss.backward()
                done.append(batch)
                total += loss.item()
        opt.step()
        opt.zero_grad()
        out.append((now(device) - t, done, total))
    return out


def nonembedding_params(model) -> int:
    emb = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - emb


def harness_task(bb, method: str, labels: list[str]):
    """The harness's tasktune task for `method` (prompt | ptuning | prefix): 20 virtual tokens each."""
    from tasktune.build import build_task
    from tasktune.methods import PrefixTuningConfig, PromptTuningConfig, PTuningConfig

    if method == "prompt":
        name, mcfg = "prompt-tuning", PromptTuningConfig(prompt_length=20, init="text", init_text=INIT_TEXT)
    elif method == "ptuning":
        name, mcfg = "p-tuning", PTuningConfig(prompt_length=20, encoder="mlp")
    else:
        name, mcfg = "prefix-tuning", PrefixTuningConfig(prefix_length=20, reparam=False)
    return build_task(bb, name, mcfg, TEMPLATE, labels, max_length=96)


def timed_eval(task, rows, batch_size: int, device="cpu") -> tuple[float, int]:
    """Seconds to score `rows` at `batch_size` a batch, and the tokens the layers ran: padding
    included, a prefix shared by every row (the soft prompt) once for the whole evaluation (its KV
    is reused), so that 2 N T counts the forward's FLOPs."""
    seen, scores = [], task.scores  # the evaluation's batches, to count the tokens it runs

    def counting(batch, *a, **kw):
        seen.append(batch)
        return scores(batch, *a, **kw)

    task.scores = counting
    try:
        t = now(device)
        task.predict_scores(rows, batch_size)
        seconds = now(device) - t
    finally:
        del task.scores  # the method again, not an instance attribute
    shared = task.prefix_cache.shared_length if task.prefix_cache is not None else (lambda b: 0)
    return seconds, sum(b.ids.numel() - len(b) * shared(b) for b in seen) + max(shared(b) for b in seen)


def run_tasktune(args) -> dict:
    from tasktune.backbone import load_backbone

    bb = load_backbone("smollm2-135m", args.dtype, device=args.device)
    data, steps = batches(args.steps)
    task = harness_task(bb, args.method, data.labels)
    timed = train_steps(task, steps, LR[args.method])[1:]  # step 1 is warm-up
    times = [t for t, _, _ in timed]
    real = sum(b.real_tokens for _, bs, _ in timed for b in bs)
    # tokens run through the layers: padding included; a prefix shared by all rows (the soft prompt)
    # runs once per optimizer step; prefix-tuning positions are attended to, not run through layers
    shared = task.prefix_cache.shared_length if task.prefix_cache is not None else (lambda b: 0)
    processed = sum(sum(b.ids.numel() - len(b) * shared(b) for b in bs) + max(shared(b) for b in bs)
                    for _, bs, _ in timed)
    n = nonembedding_params(bb.model)
    eval_s, eval_tokens = timed_eval(task, data.dev[: args.eval_n], 32, args.device)
    result = {"median_step_s": statistics.median(times), "step_s": times, "real_tok_s": real / sum(times),
              "flops_s": 4 * n * processed / sum(times), "eval_ex_s": args.eval_n / eval_s,
              "eval_flops_s": 2 * n * eval_tokens / eval_s}
    if args.profile:
        result["profile"] = {
            "train step": profiled(lambda: train_steps(task, steps[1:2], LR[args.method]), args.device),
            "eval": profiled(lambda: timed_eval(task, data.dev[:64], 32, args.device), args.device)}
    return result


def run_peft(args) -> dict:
    import peft_peer

    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    tuned = args.peft_setup == "tuned"
    model, tok = peft_peer.load(args.method, dtype, tuned, args.device)
    data, steps = batches(args.steps)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR[args.method], weight_decay=1e-5)
    times, real = [], 0
    model.train()
    for i, exs in enumerate(steps):
        t = now(args.device)
        peft_peer.loss(model, tok, exs, args.method, tuned).backward()
        opt.step()
        opt.zero_grad()
        if i:
            times.append(now(args.device) - t)
            real += sum(len(tok(ex.fields["text"], add_special_tokens=False).input_ids) for ex in exs)
    model.eval()
    t_eval = now(args.device)
    peft_peer.accuracy(model, tok, data.dev[: args.eval_n], data.labels, args.method)
    eval_s = now(args.device) - t_eval
    result = {"median_step_s": statistics.median(times), "step_s": times, "real_tok_s": real / sum(times),
              "eval_ex_s": args.eval_n / eval_s}
    if args.profile:
        def step():
            model.train()
            peft_peer.loss(model, tok, steps[1], args.method, tuned).backward()
            opt.step()
            opt.zero_grad()

        def evaluate():
            model.eval()
            peft_peer.accuracy(model, tok, data.dev[:64], data.labels, args.method)

        result["profile"] = {"train step": profiled(step, args.device), "eval": profiled(evaluate, args.device)}
    return result


def profiled(fn, device: str, top: int = 8) -> dict:
    """What one call of `fn` runs (torch.profiler): operator calls, host-device synchronisations and
    copies, and the operators taking the most host time and (on a GPU) device time, so that a slow
    row says where its time goes."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        fn()
        now(device)
    events = prof.key_averages()

    def ranked(attr):
        rows = sorted(events, key=lambda e: -getattr(e, attr, 0))[:top]
        return [[e.key, e.count, round(getattr(e, attr, 0) / 1e3, 3)] for e in rows]

    return {"aten_calls": sum(e.count for e in events if e.key.startswith("aten::")),
            "syncs": sum(e.count for e in events if "Synchronize" in e.key or e.key == "aten::_local_scalar_dense"),
            "memcpy": sum(e.count for e in events if "Memcpy" in e.key or e.key == "aten::copy_"),
            "top_host_ms": ranked("self_cpu_time_total"),
            **({"top_device_ms": ranked("self_device_time_total")} if cuda else {})}


def merged_rounds(results: list[dict]) -> dict:
    """One row from a row's rounds: the median of each figure over the rounds that ran, the rounds
    themselves (without profiles) under "rounds", the first round's profile; an error if none ran."""
    ok = [r for r in results if "error" not in r]
    if not ok:
        return {"error": results[0]["error"]}
    row = {key: statistics.median(r[key] for r in ok) for key, v in ok[0].items() if isinstance(v, (int, float))}
    row["step_s"] = ok[0]["step_s"] if len(ok) == 1 else [r["step_s"] for r in ok]
    if "profile" in ok[0]:
        row["profile"] = ok[0]["profile"]
    row["rounds"] = [{k: v for k, v in r.items() if k != "profile"} for r in results]
    return row


def child(args) -> None:
    torch.manual_seed(0)
    if args.no_cudnn_sdp:  # an A/B of the GPU's attention backends (both sides alike)
        torch.backends.cuda.enable_cudnn_sdp(False)
    result = (run_tasktune if args.one == "tasktune" else run_peft)(args)
    result["peak_rss_gb"] = peak_gb(args.device)  # on CUDA: the allocator's peak device memory
    print("RESULT " + json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--eval-n", type=int, default=128)
    ap.add_argument("--one", default=None)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu", help="cpu | cuda: the same runs on a GPU")
    ap.add_argument("--method", default="prompt")
    ap.add_argument("--peft-setup", default="tuned", choices=["tuned", "defaults"])
    ap.add_argument("--peft-setups", default="tuned,defaults",
                    help="PEFT setups compared (tuned: the headline; defaults: second rows)")
    ap.add_argument("--dtypes", default="bfloat16,float32",
                    help="backbone dtypes to compare (a CPU without bf16 matmuls: float32 only)")
    ap.add_argument("--methods", default="prompt,prefix,ptuning")
    ap.add_argument("--warm-round", action="store_true",
                    help="run every row once unrecorded first (a GPU's process-wide caches: kernels compiled at "
                         "first use, clocks), so that no row pays for the machine's first use")
    ap.add_argument("--profile", action="store_true",
                    help="also profile one training step and one evaluation of 64 rows per row (results file)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every row this many times, interleaved; rows report medians (a noisy host)")
    ap.add_argument("--no-cudnn-sdp", action="store_true", help="GPU: keep sdpa off the cuDNN backend (A/B)")
    args = ap.parse_args()
    if args.one:
        return child(args)
    dtypes = args.dtypes.split(",")
    peaks = {d: gemm_peak(getattr(torch, d), args.device) for d in dtypes}
    rows = []
    # (library, method, dtype, PEFT setup): per method and dtype tasktune and PEFT tuned side by side, then
    # PEFT's defaults at every dtype
    runs = []
    for method in args.methods.split(","):
        for dtype in dtypes:
            runs += [("tasktune", method, dtype, ""), ("peft", method, dtype, "tuned")]
        if "defaults" in args.peft_setups.split(","):
            runs += [("peft", method, dtype, "defaults") for dtype in dtypes]

    def command(lib, method, dtype, setup, profile=args.profile):
        return ([sys.executable, __file__, "--one", lib, "--dtype", dtype, "--steps", str(args.steps),
                 "--eval-n", str(args.eval_n), "--method", method, "--device", args.device]
                + (["--peft-setup", setup] if setup else []) + (["--profile"] if profile else [])
                + (["--no-cudnn-sdp"] if args.no_cudnn_sdp else []))

    if args.warm_round:  # unrecorded: the first use of the machine is paid here, by no row
        for run in runs:
            subprocess.run(command(*run, profile=False), capture_output=True)
    measured: dict[tuple, list[dict]] = {run: [] for run in runs}
    for k in range(args.rounds):  # rounds interleave the rows, so a slow phase of the host hits every row alike
        for lib, method, dtype, setup in runs:
            out = subprocess.run(command(lib, method, dtype, setup, profile=args.profile and k == 0),
                                 capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                err = [x for x in out.stderr.strip().splitlines() if x.strip()]
                result = {"error": (err[-1] if err else f"exit {out.returncode}")[:160]}
            else:
                result = json.loads(line[0][7:])
            measured[(lib, method, dtype, setup)].append(result)
            print({"library": lib, "setup": setup, "method": method, "dtype": dtype, "round": k + 1,
                   **{key: v for key, v in result.items() if key not in ("profile", "step_s")}}, flush=True)
    for (lib, method, dtype, setup), results in measured.items():
        r = {"library": lib + (f" ({setup})" if setup else ""), "method": method, "backbone dtype": dtype}
        r.update(merged_rounds(results))
        if "flops_s" in r:
            r["MFU (vs GEMM peak of dtype)"] = r["flops_s"] / peaks[dtype]
            r["eval MFU"] = r["eval_flops_s"] / peaks[dtype]
        rows.append(r)

    def find(lib, method, dtype):
        return next((r for r in rows if r["library"] == lib and r["method"] == method
                     and r["backbone dtype"] == dtype and "error" not in r), None)

    ratios, spread = {}, {}  # same dtype against PEFT tuned first (the headline), then against its defaults
    for method in args.methods.split(","):
        for dtype, tag in (("bfloat16", "bf16"), ("float32", "fp32")):
            ours = find("tasktune", method, dtype)
            for setup in ("tuned", "defaults"):
                peer = find(f"peft ({setup})", method, dtype)
                if ours is None or peer is None:
                    continue
                key = f"{method} {tag} vs PEFT {setup} {tag}"
                for name, field in (("train tok/s", "real_tok_s"), ("eval ex/s", "eval_ex_s"),
                                    ("peak RSS", "peak_rss_gb")):
                    ratios[f"{key}: {name}"] = ours[field] / peer[field]
                    # each round's own pair: how far one run's ratio can fall from the median's
                    pairs = [a[field] / b[field] for a, b in zip(ours["rounds"], peer["rounds"], strict=True)
                             if "error" not in a and "error" not in b]
                    if len(pairs) > 1:
                        spread[f"{key}: {name}"] = [min(pairs), max(pairs)]
    print(ratios)
    cols = ["library", "method", "backbone dtype", "median_step_s", "real_tok_s", "eval_ex_s", "peak_rss_gb",
            "MFU (vs GEMM peak of dtype)", "eval MFU", "error"]
    body = ("Prompt tuning (20 text-initialised virtual tokens), prefix tuning (20 prefix positions at every "
            "layer, no reparametrisation, PEFT's default) and P-tuning (20 pseudo tokens before the template, MLP "
            "prompt encoder of the backbone's width: PEFT's PromptEncoderConfig, tasktune's --encoder mlp), "
            "SST-2 train batches of 16 (natural lengths, the "
            f"same {args.steps} batches for every run; step 1 is warm-up), eval on the first {args.eval_n} dev "
            "sentences at batch 32. Each row is its own process.\n\n"
            f"GEMM peak ({8192 if args.device.startswith('cuda') else 2048}^3): "
            + ", ".join(f"{d} {v / 1e9:.0f} GFLOP/s" for d, v in peaks.items())
            + ".\n\n**tasktune / PEFT at the same backbone dtype** (PEFT tuned for this machine"
            + (", its defaults second" if "defaults" in args.peft_setups else "") + "):\n\n"
            + (f"Each row is the median of {args.rounds} rounds that interleave the rows (each its own "
               "process); a ratio is the medians' ratio, with the range of the rounds' own ratios after it.\n\n"
               if args.rounds > 1 else "")
            + "\n".join(f"- {k}: **{v:.2f}x**" + (f" (rounds: {spread[k][0]:.2f}-{spread[k][1]:.2f}x)" if k in spread
                                                  else "") for k, v in ratios.items())
            + "\n\n" + table(rows, cols))
    name, isa = isa_section("speed_vs_peft", args.device)
    if args.no_cudnn_sdp:  # an A/B trial: its own section, the headline stays
        name, isa = name + "_no_cudnn_sdp", isa + " without cuDNN attention"
    write_section(name, f"Speed and memory on {isa}: tasktune vs PEFT (prompt tuning, prefix tuning, P-tuning)",
                  f"python benchmarks/speed_vs_peft.py --steps {args.steps} --eval-n {args.eval_n} "
                  f"--dtypes {args.dtypes}" + (f" --device {args.device}" if args.device != "cpu" else "")
                  + (f" --peft-setups {args.peft_setups}" if args.peft_setups != "tuned,defaults" else "")
                  + (f" --methods {args.methods}" if args.methods != "prompt,prefix,ptuning" else "")
                  + (f" --rounds {args.rounds}" if args.rounds > 1 else "")
                  + " --warm-round" * args.warm_round + " --profile" * args.profile
                  + " --no-cudnn-sdp" * args.no_cudnn_sdp, body,
                  {"rows": rows, "ratios": ratios, "ratio_rounds": spread, "gemm_peak": peaks}, device=args.device)


if __name__ == "__main__":
    main()
