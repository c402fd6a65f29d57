"""Evaluation batch size: sentences per second and MFU of the whole SST-2 dev set at 8-128 per batch.

    python benchmarks/eval_batch_trial.py [--rounds 2]      (writes the "eval_batch" section)

`train --eval-batch-size` (32 before this trial, 64 after it) sets how many length-sorted dev sentences one forward
runs. For prompt, prefix and P-tuning (speed_vs_peft.py's tasks, untrained: speed does not
depend on the values), the whole dev split (872 sentences) is scored at each batch size in
turn, round after round in one process, bf16; a row is the median over rounds. It runs twice,
each its own process: on glibc's malloc and on tcmalloc where installed (what `tasktune`
preloads), since the allocator moves large batches most. MFU: 2 N T FLOP/s
(N non-embedding parameters, T the tokens the layers run: padding included, a shared prefix
once, as speed_vs_peft.py counts) against this machine's bf16 GEMM peak.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_clock import gemm_peak  # noqa: E402
from speed_vs_peft import batches, harness_task, nonembedding_params, timed_eval  # noqa: E402

from report import child_result, table, write_section  # noqa: E402

SIZES = (8, 16, 32, 64, 128)
METHODS = {"prompt tuning": "prompt", "prefix tuning": "prefix", "P-tuning": "ptuning"}


def child(rounds: int) -> None:
    """This process's rows (seconds and tokens per method and batch size), as one RESULT line."""
    import json

    from tasktune.backbone import load_backbone
    from tasktune.provenance import allocator

    bb = load_backbone("smollm2-135m", "bfloat16")
    data, _ = batches(1)
    rows = []
    for label, method in METHODS.items():
        task = harness_task(bb, method, data.labels)
        task.predict_scores(data.dev[:64], 32)  # warm-up
        runs: dict[int, list[tuple[float, int]]] = {s: [] for s in SIZES}
        for r in range(rounds):
            for size in SIZES if r % 2 == 0 else reversed(SIZES):
                runs[size].append(timed_eval(task, data.dev, size))
        rows += [{"method": label, "eval batch": size, "seconds": [t for t, _ in runs[size]],
                  "tokens": runs[size][0][1]} for size in SIZES]
        del task
    print("RESULT " + json.dumps({"allocator": allocator(), "sentences": len(data.dev),
                                  "parameters": nonembedding_params(bb.model), "rows": rows}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.rounds)
    import os

    from tasktune.cli.launch import find_tcmalloc
    from tasktune.provenance import git_commit

    commit = git_commit()
    peak = gemm_peak(torch.bfloat16)
    found = find_tcmalloc()
    results = []
    for preload in [None] + ([found] if found else []):  # glibc's malloc, then tcmalloc where installed
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"} | ({"LD_PRELOAD": preload} if preload else {})
        results.append(child_result([sys.executable, __file__, "--child", "--rounds", str(args.rounds)], env))
        print(results[-1]["allocator"], flush=True)
    peak = max(peak, gemm_peak(torch.bfloat16))  # before and after: a busy host lowers one reading
    rows = []
    for res in results:
        n, count = res["parameters"], res["sentences"]
        for r in res["rows"]:
            seconds = statistics.median(r["seconds"])
            row = {"allocator": res["allocator"], "method": r["method"], "eval batch": r["eval batch"],
                   "sentences/s": count / seconds,
                   "range over rounds": f"{count / max(r['seconds']):.1f}-{count / min(r['seconds']):.1f}",
                   "tokens run": r["tokens"], "MFU": f"{2 * n * r['tokens'] / seconds / peak:.0%}"}
            rows.append(row)
        for method in METHODS:
            mine = {x["eval batch"]: x["sentences/s"] for x in rows
                    if x["allocator"] == res["allocator"] and x["method"] == method}
            best = max(mine, key=mine.get)
            print(f"{res['allocator']} {method}: best batch {best} ({mine[best] / mine[32]:.2f}x batch 32)", flush=True)
    body = (f"The whole SST-2 dev split ({results[0]['sentences']} sentences), bf16, length-sorted batches of each "
            f"size in turn, {args.rounds} rounds in one process per allocator (median; the order reversed every "
            f"other round); the untrained tasks of speed_vs_peft.py (speed does not depend on the values). bf16 GEMM "
            f"peak {peak / 1e9:,.0f} GFLOP/s at 2048^3; MFU = 2 N T / s against it (N = "
            f"{results[0]['parameters'] / 1e6:.1f}M non-embedding parameters; T the tokens the layers ran, padding "
            f"included, a shared prefix once). Commit {commit}.\n\n" + table(rows, list(rows[0])))
    write_section("eval_batch", "Evaluation batch size (SST-2 dev, embedded SmolLM2-135M)",
                  f"python benchmarks/eval_batch_trial.py --rounds {args.rounds}", body,
                  {"rounds": args.rounds, "peak_flops": peak, "results": results}, commit=commit)


if __name__ == "__main__":
    main()
