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
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_clock import gemm_peak  # noqa: E402
from env_ab import ab_rows, best_times, env_ab, training_part  # noqa: E402

from report import table, write_section  # noqa: E402

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

            best = best_times({"forward, separate": lambda x=x, ws=ws: [F.linear(x, w) for w in ws],
                               "forward, fused": lambda x=x, block=block: F.linear(x, block),
                               "backward, separate": bwd_sep,
                               "backward, fused": lambda g=g, block=block: g @ block})
            rows.append({"matmuls": name, "tokens": m, **{f"{k} ms": 1e3 * v for k, v in best.items()},
                         "forward speedup": f"{best['forward, separate'] / best['forward, fused']:.2f}x",
                         "backward speedup": f"{best['backward, separate'] / best['backward, fused']:.2f}x"})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    from tasktune.provenance import git_commit

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    commit = git_commit()
    mm = matmuls()
    peak = gemm_peak(torch.bfloat16)
    ab = env_ab("TASKTUNE_FUSE", (("separate", "0"), ("fused", "1")), args.rounds)
    rows = ab_rows(ab, ("separate", "fused"), peak)
    body = ("Part 1, the matmuls alone (bf16, best of 15 trials):\n\n" + table(mm, list(mm[0])) + "\n\n"
            + training_part("TASKTUNE_FUSE", "the model's own q/k/v matmuls", args.rounds, ab, peak, rows))
    write_section("fusion", "Fused q/k/v matmuls", "python benchmarks/fusion_trial.py", body,
                  {"rounds": args.rounds, "bf16_gemm_peak_flops": peak, "matmuls": mm, **ab, "rows": rows},
                  commit=commit)


if __name__ == "__main__":
    main()
