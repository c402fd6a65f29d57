"""Timing and memory that mean the same on a CPU and on a GPU, for the benchmark scripts.

On CUDA the clock waits for queued kernels (a step is over when its kernels are), peak memory is
the allocator's high-water mark, and the GEMM peak is measured on the device; on a CPU these are
the wall clock, the process's peak RSS and a CPU matmul.
"""

from __future__ import annotations

import resource
import time

import torch


def now(device: torch.device | str) -> float:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def peak_gb(device: torch.device | str) -> float:
    """Peak memory in GB (10^9 bytes): device memory on CUDA, the process's RSS on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux


def gemm_peak(dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 2048, reps: int = 4,
              trials: int = 5) -> float:
    """FLOP/s of a large square matmul: the best of `trials` timings (a peak, so noise only lowers it)."""
    device = torch.device(device)
    if device.type == "cuda":
        n, reps = 8192, 10  # a GPU needs a larger problem to reach its rate
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    best = 0.0
    for _ in range(trials):
        t = now(device)
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (now(device) - t))
    return best
