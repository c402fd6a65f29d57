"""How fast this CPU multiplies at the embedded model's own matmul shapes, against the 2048^3 peak.

    python benchmarks/gemm_shapes.py

A training forward of SmolLM2-135M multiplies [M, 576] activations by [576, 576] (q, o),
[576, 192] (k, v), [576, 1536] (gate, up) and [1536, 576] (down) weights, M = tokens in the
forward. The backward to the inputs multiplies by the transposes. This prints the bf16 FLOP/s of
each shape (forward and backward, weighted by how often a layer runs it) for a range of M, as a
share of the 2048^3 GEMM peak: the ceiling a model FLOP utilisation (MFU) figure can reach.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_vs_peft import gemm_peak  # noqa: E402

from report import table, write_section  # noqa: E402

# (in, out, count per layer): q, k, v, o, gate, up, down
LAYER = [(576, 576, 1), (576, 192, 2), (576, 576, 1), (576, 1536, 2), (1536, 576, 1)]


def layer_rate(m: int, dtype: torch.dtype, reps: int = 20, trials: int = 3) -> float:
    """FLOP/s of one layer's matmuls, forward (x @ W) and backward to the input (g @ W^T)."""
    mats = []
    for k, n, count in LAYER:
        w = torch.randn(k, n, dtype=dtype)
        mats += [(torch.randn(m, k, dtype=dtype), w), (torch.randn(m, n, dtype=dtype), w.t())] * count
    flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in mats)
    for a, b in mats:
        a @ b
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            for a, b in mats:
                a @ b
        best = max(best, flops * reps / (time.perf_counter() - t))
    return best


def main() -> None:
    peak = gemm_peak(torch.bfloat16)
    rows = []
    for m in (128, 256, 440, 512, 768, 1024, 1536, 2048):
        r = layer_rate(m, torch.bfloat16)
        rows.append({"M (tokens per forward)": m, "bf16 GFLOP/s": r / 1e9, "share of 2048^3 peak": r / peak})
        print(rows[-1], flush=True)
    body = (f"bf16 2048^3 GEMM peak: {peak / 1e9:.0f} GFLOP/s. Each row: one SmolLM2 layer's matmuls (q, k, v, o, "
            "gate, up, down; forward and backward to the input) at M tokens, best of 3 timings.\n\n"
            + table(rows, list(rows[0])))
    write_section("gemm_shapes", "GEMM efficiency at the model's own shapes (bf16)", "python benchmarks/gemm_shapes.py",
                  body, rows)


if __name__ == "__main__":
    main()
