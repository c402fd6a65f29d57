"""Fused q/k/v (backbone/fused_projections.py) against the model's own three matmuls: step and evaluation.

    python benchmarks/fusion_trial.py [--rounds 3]      (writes the "fusion" section)

Part 1, the matmuls alone, bf16, on this CPU: a layer's q/k/v projections ([576, 576] and
[576, 192] x 2 on SmolLM2) and its MLP's gate/up ([576, 1536] x 2), separate against one matmul
on the concatenated weights, forward (x W^T) and backward to the input (g W), at 256-1,024
tokens; every variant timed in turn, best of 15 trials of 10 calls. This is why only q/k/v is
fused: the gate/up backward with K = 3,072 runs slower here than two with K = 1,536.

Part 2, training: compile_trial.py's eager child (12 SST-2 batches of 16, bf16, median of steps 3
and later, then 128 dev sentences) for prompt, prefix and P-tuning, with TASKTUNE_FUSE=0 (the
model's own q/k/v) and 1 (fused) alternating round after round, each its own process, all on
the allocator `tasktune` preloads (tcmalloc where installed). The first round also writes step
0's gradient from both, compared here (cosine): the fused matmul changes bf16 rounding, not the
update.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_clock import gemm_peak  # noqa: E402

from report import child_result, table, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
METHODS = {"prompt tuning": "prompt", "prefix tuning": "prefix", "P-tuning": "ptuning"}
HIDDEN, KV, INTER = 576, 192, 1536


def matmuls(tokens: tuple[int, ...] = (256, 512, 768, 1024)) -> list[dict]:
    torch.manual_seed(0)
    dt = torch.bfloat16
    groups = {"q/k/v": [HIDDEN, KV, KV], "gate/up": [INTER, INTER]}
    rows = []
    for name, outs in groups.items():
        ws = [torch.randn(o, HIDDEN, dtype=dt) * 0.02 for o in outs]
        block = torch.cat(ws)
        for m in tokens:
            x = torch.randn(m, HIDDEN, dtype=dt)
            gs = [torch.randn(m, o, dtype=dt) for o in outs]
            g = torch.cat(gs, -1)

            def bwd_sep(gs=gs, ws=ws):
                out = gs[0] @ ws[0]
                for gi, wi in zip(gs[1:], ws[1:], strict=True):
                    out = out + gi @ wi
                return out

            fns = {"forward, separate": lambda x=x, ws=ws: [F.linear(x, w) for w in ws],
                   "forward, fused": lambda x=x, block=block: F.linear(x, block),
                   "backward, separate": bwd_sep,
                   "backward, fused": lambda g=g, block=block: g @ block}
            best = dict.fromkeys(fns, float("inf"))
            for f in fns.values():
                f()
            for _ in range(15):
                for k, f in fns.items():
                    t = time.perf_counter()
                    for _ in range(10):
                        f()
                    best[k] = min(best[k], (time.perf_counter() - t) / 10)
            rows.append({"matmuls": name, "tokens": m, **{f"{k} ms": 1e3 * v for k, v in best.items()},
                         "forward speedup": f"{best['forward, separate'] / best['forward, fused']:.2f}x",
                         "backward speedup": f"{best['backward, separate'] / best['backward, fused']:.2f}x"})
            print(rows[-1], flush=True)
    return rows


def cosine(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    va = torch.cat([ta[k].float().flatten() for k in sorted(ta)])
    vb = torch.cat([tb[k].float().flatten() for k in sorted(tb)])
    return float(F.cosine_similarity(va, vb, dim=0))


def main() -> None:
    from tasktune.cli.launch import find_tcmalloc
    from tasktune.provenance import git_commit

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    commit = git_commit()
    tc = find_tcmalloc()
    base_env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TASKTUNE_FUSE")}
    if tc:
        base_env["LD_PRELOAD"] = tc
    mm = matmuls()
    results = {label: {"separate": [], "fused": []} for label in METHODS}
    cos, loss_gap = {}, {}
    peak = gemm_peak(torch.bfloat16)
    work = Path(tempfile.mkdtemp(prefix="fusion-"))
    for i in range(args.rounds):
        for label, method in METHODS.items():
            order = (("separate", "0"), ("fused", "1"))
            for name, flag in order if i % 2 == 0 else order[::-1]:
                cmd = [sys.executable, str(HERE / "compile_trial.py"), "--mode", "eager", "--method", method]
                if i == 0:
                    cmd += ["--grad-out", str(work / f"{method}-{name}.safetensors")]
                r = child_result(cmd, {**base_env, "TASKTUNE_FUSE": flag})
                results[label][name].append({"median_step_s": r["median_step_s"], "eval_ex_s": r["eval_ex_s"],
                                             "flops_s": r["flops_s"], "losses": r["losses"]})
                print(label, name, {k: v for k, v in results[label][name][-1].items() if k != "losses"}, flush=True)
            if i == 0:
                cos[label] = cosine(work / f"{method}-separate.safetensors", work / f"{method}-fused.safetensors")
                first = [results[label][k][0]["losses"] for k in ("separate", "fused")]
                loss_gap[label] = max(abs(a - b) for a, b in zip(*first, strict=True))
    rows = []
    for label, by in results.items():
        step = {k: statistics.median(r["median_step_s"] for r in v) for k, v in by.items()}
        ev = {k: statistics.median(r["eval_ex_s"] for r in v) for k, v in by.items()}
        spread = {k: (min(r["median_step_s"] for r in v), max(r["median_step_s"] for r in v)) for k, v in by.items()}
        rows.append({"method (eager, bf16)": label, "step s, separate": step["separate"],
                     "step s, fused": step["fused"],
                     "step speedup": f"{step['separate'] / step['fused']:.2f}x",
                     "step range over rounds (separate / fused)":
                         f"{spread['separate'][0]:.3f}-{spread['separate'][1]:.3f} / "
                         f"{spread['fused'][0]:.3f}-{spread['fused'][1]:.3f}",
                     "eval sentences/s, separate": ev["separate"], "eval sentences/s, fused": ev["fused"],
                     "eval speedup": f"{ev['fused'] / ev['separate']:.2f}x",
                     "MFU fused": f"{100 * statistics.median(r['flops_s'] for r in by['fused']) / peak:.1f}%",
                     "step-0 gradient cosine": f"{cos[label]:.5f}",
                     "largest loss difference (12 steps)": f"{loss_gap[label]:.4f}"})
    body = ("Part 1, the matmuls alone (bf16, best of 15 trials):\n\n" + table(mm, list(mm[0])) + "\n\n"
            f"Part 2, training steps: medians over {args.rounds} rounds, each cell its own process, allocator "
            f"{tc or 'glibc malloc'}; a step is the median of steps 3-11 of that process. TASKTUNE_FUSE=0 is the "
            "model's own q/k/v matmuls. MFU: 4 N T "
            f"FLOP/s (speed_vs_peft.py's count) against this machine's bf16 GEMM peak, {peak / 1e9:,.0f} GFLOP/s "
            "at 2048^3.\n\n" + table(rows, list(rows[0])))
    write_section("fusion", "Fused q/k/v matmuls", "python benchmarks/fusion_trial.py", body,
                  {"rounds": args.rounds, "allocator": tc, "bf16_gemm_peak_flops": peak, "matmuls": mm,
                   "results": results, "cosine": cos, "loss_gap": loss_gap, "rows": rows}, commit=commit)


if __name__ == "__main__":
    main()
