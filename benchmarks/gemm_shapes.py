"""How fast this CPU multiplies at the embedded model's own matmul shapes, against the 2048^3 peak.

    python benchmarks/gemm_shapes.py

A training forward of SmolLM2-135M multiplies [M, 576] activations by [576, 576] (q, o),
[576, 192] (k, v), [576, 1536] (gate, up) and [1536, 576] (down) weights, M = tokens in the
forward. The backward to the inputs multiplies by the transposes. This prints the bf16 FLOP/s of
each shape (forward and backward, weighted by how often a layer runs it) for a range of M, as a
share of the 2048^3 GEMM peak: the ceiling a model FLOP utilisation (MFU) figure can reach.

Then, inside real training (bf16 prompt tuning, the batches and steps of speed_vs_peft.py), it
profiles a few steps with torch.profiler (FLOPs counted by the profiler from the shapes) and
splits MFU into its two factors: the share of step time spent in matmuls, and the rate those
matmuls run at. MFU ~ matmul share x matmul rate / peak.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_clock import gemm_peak  # noqa: E402

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


def in_training(steps: int = 4) -> dict:
    """Matmul share of a bf16 prompt-tuning step and the matmuls' own rate, from a profile."""
    from speed_vs_peft import batches, harness_task, train_steps
    from torch.profiler import profile

    from tasktune.backbone import load_backbone

    data, chunks = batches(steps + 2)
    task = harness_task(load_backbone("smollm2-135m", "bfloat16"), "prompt", data.labels)
    train_steps(task, chunks[:2], 3e-2)  # warm-up
    with profile(with_flops=True) as counted:  # FLOPs from the shapes (recording them is slow)
        train_steps(task, chunks[2:], 3e-2)
    t = time.perf_counter()
    with profile() as timed:  # the same batches again, timed with the profiler's lighter mode
        train_steps(task, chunks[2:], 3e-2)
    wall = time.perf_counter() - t
    names = ("aten::mm", "aten::bmm", "aten::addmm")
    flops = sum(e.flops for e in counted.key_averages() if e.key in names)
    mm_s = sum(e.self_cpu_time_total for e in timed.key_averages() if e.key in names) / 1e6
    return {"steps": steps, "wall s (profiled)": wall, "matmul share of wall time": mm_s / wall,
            "matmul GFLOP/s": flops / mm_s / 1e9}


def main() -> None:
    peak = gemm_peak(torch.bfloat16)
    rows = []
    for m in (22, 128, 256, 440, 512, 768, 1024, 1536, 2048):
        r = layer_rate(m, torch.bfloat16)
        rows.append({"M (tokens per forward)": m, "bf16 GFLOP/s": r / 1e9})
        print(rows[-1], flush=True)
    peak = max(peak, gemm_peak(torch.bfloat16))  # before and after: a busy host lowers one reading
    for row in rows:
        row["share of 2048^3 peak"] = row["bf16 GFLOP/s"] * 1e9 / peak
    live = in_training()
    print(live, flush=True)
    share, rate = live["matmul share of wall time"], live["matmul GFLOP/s"] * 1e9
    body = (f"bf16 2048^3 GEMM peak: {peak / 1e9:.0f} GFLOP/s. Each row: one SmolLM2 layer's matmuls (q, k, v, o, "
            "gate, up, down; forward and backward to the input) at M tokens, best of 3 timings, weights hot in "
            "cache (M = 22 is the soft prompt plus 'Review:' run alone).\n\n"
            + table(rows, list(rows[0]))
            + f"\n\nInside real training ({live['steps']} bf16 prompt-tuning steps of speed_vs_peft.py under "
            f"torch.profiler, FLOPs from the profiler): matmuls (mm, bmm) take **{share:.0%}** of the profiled "
            f"wall time and run at **{rate / 1e9:.0f} GFLOP/s** ({rate / peak:.0%} of peak). MFU is about the "
            f"product of the two ({share * rate / peak:.0%} here; the profiler adds its own time per op, so the "
            "unprofiled MFU of speed_vs_peft.py is higher).")
    write_section("gemm_shapes", "GEMM efficiency at the model's own shapes (bf16)", "python benchmarks/gemm_shapes.py",
                  body, {"shapes": rows, "in_training": live})


if __name__ == "__main__":
    main()
