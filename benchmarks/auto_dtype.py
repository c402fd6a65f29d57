"""What `--dtype auto` picks on this machine, and whether it picked the faster dtype.

    python benchmarks/auto_dtype.py [--rounds 2] [--steps 30]

Three readings, one after another (nothing else running): the bf16 and fp32 GEMM peaks at 2048^3, the
probe `--dtype auto` runs (one linear layer at 768 x 576 -> 1536, backbone/matmul_speed.py), and the
README's main job (`tasktune train --max-steps N`) in bf16 and in fp32, the two alternating over
`--rounds`, each its own process. One section per kind of matrix unit (report.isa_section).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_clock import gemm_peak  # noqa: E402

from tasktune.backbone.dtype import resolve_dtype  # noqa: E402
from tasktune.backbone.matmul_speed import MARGIN, SHAPE, measure  # noqa: E402
from tasktune.provenance import git_commit  # noqa: E402

from report import isa_section, table, write_section  # noqa: E402


def train(dtype: str, steps: int, out: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(["tasktune", "train", "--output", str(out), "--overwrite", "--max-steps", str(steps),
                           "--dtype", dtype], capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(proc.stderr[-2000:])
    res = json.loads(lines[-1])
    return {"wall_s": wall, "train_s": res["train_seconds"], "tok_s": res["tokens_per_second"],
            "dev": res["dev"]["accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    commit = git_commit()
    section, unit = isa_section("auto_dtype")
    peaks = {str(dt).split(".")[-1]: gemm_peak(dt) for dt in (torch.bfloat16, torch.float32)}
    probe = measure()
    auto = str(resolve_dtype("auto", torch.device("cpu"))).split(".")[-1]
    runs: dict[str, list[dict]] = {"bfloat16": [], "float32": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for dt in (("bfloat16", "float32") if r % 2 == 0 else ("float32", "bfloat16")):
                runs[dt].append(train(dt, args.steps, Path(tmp) / dt))
    rows = [{"dtype": dt, "GEMM 2048^3 GFLOP/s": peaks[dt] / 1e9,
             "probe ms": 1e3 * (probe.bf16_s if dt == "bfloat16" else probe.fp32_s),
             "train tok/s (median)": statistics.median(x["tok_s"] for x in rs),
             "tok/s rounds": ", ".join(f"{x['tok_s']:.0f}" for x in rs),
             "wall s (median)": statistics.median(x["wall_s"] for x in rs),
             "dev acc": rs[-1]["dev"]} for dt, rs in runs.items()]
    faster = max(rows, key=lambda x: x["train tok/s (median)"])["dtype"]
    ratio = rows[1]["train tok/s (median)"] / rows[0]["train tok/s (median)"]
    body = (f"Matrix unit: {unit}. The probe (`--dtype auto`): one linear layer at {SHAPE[0]} x {SHAPE[1]} -> "
            f"{SHAPE[2]}, best of 5 interleaved calls; bf16 is picked where it runs >= {MARGIN}x as fast as fp32. "
            f"Here bf16 ran at **{probe.bf16_speedup:.2f}x** fp32, so `auto` picks **{auto}**. The README's main job "
            f"(`tasktune train --max-steps {args.steps}`, demo data) in each dtype, {args.rounds} alternating rounds, "
            f"each its own process: fp32 trains **{ratio:.2f}x** the tokens per second of bf16; the faster dtype "
            f"here is **{faster}**, {'the one' if faster == auto else 'not the one'} `auto` picks.\n\n"
            + table(rows, list(rows[0])))
    data = {"commit": commit, "probe": {"bf16_s": probe.bf16_s, "fp32_s": probe.fp32_s, "shape": SHAPE},
            "auto": auto, "gemm_peak": peaks, "runs": runs}
    write_section(section, f"What `--dtype auto` picks on {unit}, and the faster dtype",
                  f"python benchmarks/auto_dtype.py --rounds {args.rounds} --steps {args.steps}", body, data,
                  commit=commit)


if __name__ == "__main__":
    main()
