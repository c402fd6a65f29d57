"""A/B of one environment switch on whole training runs, and timing of small kernels side by side.

`env_ab` runs compile_trial.py's eager child (12 SST-2 batches of 16, bf16, median of steps 3 and
later, then 128 dev sentences) for prompt, prefix and P-tuning with the switch at each of its two
values, alternating the order round after round, each run its own process on the allocator
`tasktune` preloads (tcmalloc where installed). The first round also writes step 0's gradient from
both arms, compared here: cosine, and the largest loss difference over the 12 steps.
Used by fusion_trial.py (TASKTUNE_FUSE), packing_trial.py (TASKTUNE_PACK) and last_layer_trial.py
(TASKTUNE_LAST_LAYER).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from report import child_result

HERE = Path(__file__).resolve().parent
METHODS = {"prompt tuning": "prompt", "prefix tuning": "prefix", "P-tuning": "ptuning"}


def best_times(fns: dict, trials: int = 15, calls: int = 10) -> dict[str, float]:
    """Best seconds per call of each function, the functions timed in turn (a slow phase of the
    host hits them all)."""
    best = dict.fromkeys(fns, float("inf"))
    for f in fns.values():
        f()
    for _ in range(trials):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(calls):
                f()
            best[k] = min(best[k], (time.perf_counter() - t) / calls)
    return best


def cosine(a: Path, b: Path) -> float:
    """The cosine of two saved gradients (safetensors, every tensor in name order), in fp64 so that
    equal directions read 1.0, never above it."""
    from safetensors.torch import load_file

    def flat(path: Path) -> torch.Tensor:
        tensors = load_file(str(path))
        return torch.cat([tensors[k].double().flatten() for k in sorted(tensors)])

    return float(F.cosine_similarity(flat(a), flat(b), dim=0))


def allocator_env(switch: str) -> tuple[dict, str | None]:
    """This process's environment without LD_PRELOAD and `switch`, with tcmalloc preloaded where
    installed; and the allocator's path."""
    from tasktune.cli.launch import find_tcmalloc

    tc = find_tcmalloc()
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", switch)}
    if tc:
        env["LD_PRELOAD"] = tc
    return env, tc


def env_ab(switch: str, arms: tuple[tuple[str, str], tuple[str, str]], rounds: int) -> dict:
    """{"results": {method label: {arm: [per-round results]}}, "cosine": ..., "loss_gap": ...,
    "allocator": ...}: `arms` are (name, value of `switch`) pairs, the first the baseline."""
    env, tc = allocator_env(switch)
    names = [name for name, _ in arms]
    results = {label: {name: [] for name in names} for label in METHODS}
    cos, loss_gap = {}, {}
    work = Path(tempfile.mkdtemp(prefix="env-ab-"))
    for i in range(rounds):
        for label, method in METHODS.items():
            for name, value in arms if i % 2 == 0 else arms[::-1]:
                cmd = [sys.executable, str(HERE / "compile_trial.py"), "--mode", "eager", "--method", method]
                if i == 0:
                    cmd += ["--grad-out", str(work / f"{method}-{name}.safetensors")]
                r = child_result(cmd, {**env, switch: value})
                results[label][name].append({k: r[k] for k in ("median_step_s", "eval_ex_s", "flops_s", "losses")}
                                            | {"peak_rss_gb": r.get("peak_rss_gb")})
                print(label, name, {k: v for k, v in results[label][name][-1].items() if k != "losses"}, flush=True)
            if i == 0:
                cos[label] = cosine(*(work / f"{method}-{n}.safetensors" for n in names))
                first = [results[label][n][0]["losses"] for n in names]
                loss_gap[label] = max(abs(a - b) for a, b in zip(*first, strict=True))
    return {"results": results, "cosine": cos, "loss_gap": loss_gap, "allocator": tc}


def ab_rows(ab: dict, names: tuple[str, str], peak: float) -> list[dict]:
    """One row per method: medians over rounds of each arm, the second arm's speedups, its MFU."""
    base, new = names
    rows = []
    for label, by in ab["results"].items():
        step = {k: statistics.median(r["median_step_s"] for r in v) for k, v in by.items()}
        ev = {k: statistics.median(r["eval_ex_s"] for r in v) for k, v in by.items()}
        lo_hi = {k: (min(r["median_step_s"] for r in v), max(r["median_step_s"] for r in v)) for k, v in by.items()}
        rows.append({"method (eager, bf16)": label, f"step s, {base}": step[base], f"step s, {new}": step[new],
                     "step speedup": f"{step[base] / step[new]:.2f}x",
                     f"step range over rounds ({base} / {new})":
                         f"{lo_hi[base][0]:.3f}-{lo_hi[base][1]:.3f} / {lo_hi[new][0]:.3f}-{lo_hi[new][1]:.3f}",
                     f"eval sentences/s, {base}": ev[base], f"eval sentences/s, {new}": ev[new],
                     "eval speedup": f"{ev[new] / ev[base]:.2f}x",
                     f"MFU {new}": f"{100 * statistics.median(r['flops_s'] for r in by[new]) / peak:.1f}%",
                     "step-0 gradient cosine": f"{ab['cosine'][label]:.5f}",
                     "largest loss difference (12 steps)": f"{ab['loss_gap'][label]:.4f}"})
        if all(r.get("peak_rss_gb") for v in by.values() for r in v):
            rss = {k: statistics.median(r["peak_rss_gb"] for r in v) for k, v in by.items()}
            rows[-1].update({f"peak RSS GB, {base}": rss[base], f"peak RSS GB, {new}": rss[new]})
    return rows


def training_part(switch: str, baseline: str, rounds: int, ab: dict, peak: float, rows: list[dict]) -> str:
    """The "Part 2" paragraph and table of an env_ab section; `baseline` says what `switch`=0 runs."""
    from report import table

    return (f"Part 2, training steps: medians over {rounds} rounds, each cell its own process, allocator "
            f"{ab['allocator'] or 'glibc malloc'}; a step is the median of steps 3-11 of that process. "
            f"{switch}=0 is {baseline}. MFU: 4 N T FLOP/s (speed_vs_peft.py's count) against this machine's "
            f"bf16 GEMM peak, {peak / 1e9:,.0f} GFLOP/s at 2048^3.\n\n" + table(rows, list(rows[0])))
