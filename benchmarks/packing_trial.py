"""Packed weights (backbone/packed_weights.py) against plain ones: the GEMMs, the step, evaluation, memory.

    python benchmarks/packing_trial.py [--rounds 3]      (writes the "packing" section)

Part 1, the matmuls alone, bf16, on this CPU, at SmolLM2's shapes: o [576, 576], the fused q/k/v
[960, 576], gate or up [1536, 576] and down [576, 1536], each over 30 distinct weights (a model's
layers: the weights come from memory, not from a warm cache), forward (x W^T) and backward to the
input (g W), plain (oneDNN reorders the weight each call) against packed once; at 22 tokens (a
soft prompt run once per step), 192 and 768 (the trainer's pieces) and 1,600 (an evaluation
batch). Every variant timed in turn, best of 15 trials. The outputs are compared bit for bit.

Part 2, training: env_ab.py's runs (12 SST-2 batches of 16, bf16, then 128 dev sentences) for
prompt, prefix and P-tuning with TASKTUNE_PACK=0 (plain) and 1 (packed, the default), alternating
round after round, each its own process; with each run's peak RSS.
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

SHAPES = {"o": (576, 576), "q/k/v": (960, 576), "gate, up": (1536, 576), "down": (576, 1536)}
LAYERS = 30


def matmuls(tokens: tuple[int, ...] = (22, 192, 768, 1600)) -> list[dict]:
    from tasktune.backbone.packed_weights import _matmul, _pack

    torch.manual_seed(0)
    rows = []
    for name, (out, inp) in SHAPES.items():
        ws = [torch.randn(out, inp, dtype=torch.bfloat16) * 0.02 for _ in range(LAYERS)]
        fwd, bwd = [_pack(w) for w in ws], [_pack(w.t()) for w in ws]
        for m in tokens:
            x, g = torch.randn(m, inp, dtype=torch.bfloat16), torch.randn(m, out, dtype=torch.bfloat16)
            same = all(torch.equal(F.linear(x, w), _matmul(x, p, None)) and torch.equal(g @ w, _matmul(g, q, None))
                       for w, p, q in zip(ws, fwd, bwd, strict=True))
            best = best_times({"forward, plain": lambda x=x, ws=ws: [F.linear(x, w) for w in ws],
                               "forward, packed": lambda x=x, fwd=fwd: [_matmul(x, p, None) for p in fwd],
                               "backward, plain": lambda g=g, ws=ws: [g @ w for w in ws],
                               "backward, packed": lambda g=g, bwd=bwd: [_matmul(g, q, None) for q in bwd]},
                              calls=1)
            flop = 2 * m * out * inp * LAYERS
            rows.append({"weight": name, "tokens": m,
                         **{f"{k} GFLOP/s": flop / v / 1e9 for k, v in best.items()},
                         "forward speedup": f"{best['forward, plain'] / best['forward, packed']:.2f}x",
                         "backward speedup": f"{best['backward, plain'] / best['backward, packed']:.2f}x",
                         "bit-identical": "yes" if same else "NO"})
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
    ab = env_ab("TASKTUNE_PACK", (("plain", "0"), ("packed", "1")), args.rounds)
    rows = ab_rows(ab, ("plain", "packed"), peak)
    body = (f"Part 1, the matmuls alone (bf16, {LAYERS} distinct weights a call, best of 15 trials; GFLOP/s of "
            "the matmuls):\n\n" + table(mm, list(mm[0])) + "\n\n"
            + training_part("TASKTUNE_PACK", "plain weights", args.rounds, ab, peak, rows))
    write_section("packing", "Packed weights", "python benchmarks/packing_trial.py", body,
                  {"rounds": args.rounds, "bf16_gemm_peak_flops": peak, "matmuls": mm, **ab, "rows": rows},
                  commit=commit)


if __name__ == "__main__":
    main()
