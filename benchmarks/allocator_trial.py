"""glibc malloc against tcmalloc (what `tasktune` preloads where installed, cli/launch.py): step and evaluation.

    python benchmarks/allocator_trial.py [--rounds 2]      (writes the "allocator" section)

Each measurement is its own process, started with or without LD_PRELOAD of tcmalloc; the two
allocators alternate, round after round, so drift on this noisy host falls on both. Rows:
tasktune's eager step for prompt, prefix and P-tuning and its compiled prompt-tuning step
(compile_trial.py's child: 12 SST-2 batches of 16, bf16, median of steps 3 and later, then 128 dev
sentences), and PEFT prompt tuning set up as speed_vs_peft.py's tuned peer (bf16, eager attention,
label-position logits), under both allocators too: the peer gets the same allocator, so the
comparison between libraries stays like for like.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import child_result, table, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = {  # label: the child's command line (after the interpreter)
    "tasktune prompt tuning, eager": [str(HERE / "compile_trial.py"), "--mode", "eager", "--method", "prompt"],
    "tasktune prefix tuning, eager": [str(HERE / "compile_trial.py"), "--mode", "eager", "--method", "prefix"],
    "tasktune P-tuning, eager": [str(HERE / "compile_trial.py"), "--mode", "eager", "--method", "ptuning"],
    "tasktune prompt tuning, --compile (warm cache)": [str(HERE / "compile_trial.py"), "--mode", "compiled",
                                                       "--method", "prompt"],
    "PEFT prompt tuning (tuned peer)": [str(HERE / "speed_vs_peft.py"), "--one", "peft", "--method", "prompt",
                                        "--dtype", "bfloat16", "--peft-setup", "tuned"],
}


def run(args: list[str], preload: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TASKTUNE_MALLOC_PRELOADED")}
    if preload:
        env["LD_PRELOAD"] = preload
    return child_result([sys.executable, *args], env)


def main() -> None:
    from tasktune.cli.launch import find_tcmalloc
    from tasktune.provenance import git_commit

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tc = find_tcmalloc()
    if tc is None:
        sys.exit("no tcmalloc here (Debian/Ubuntu: apt-get install libgoogle-perftools4)")
    commit = git_commit()
    run(RUNS["tasktune prompt tuning, --compile (warm cache)"], "")  # fills the inductor cache, untimed
    results: dict[str, dict[str, list[dict]]] = {label: {"glibc": [], "tcmalloc": []} for label in RUNS}
    for i in range(args.rounds):
        for label, child in RUNS.items():
            for name, preload in ((("glibc", ""), ("tcmalloc", tc)) if i % 2 == 0
                                  else (("tcmalloc", tc), ("glibc", ""))):
                r = run(child, preload)
                results[label][name].append({"median_step_s": r["median_step_s"], "eval_ex_s": r["eval_ex_s"]})
                print(label, name, results[label][name][-1], flush=True)
    rows = []
    for label, by in results.items():
        step = {k: statistics.median(r["median_step_s"] for r in v) for k, v in by.items()}
        ev = {k: statistics.median(r["eval_ex_s"] for r in v) for k, v in by.items()}
        spread = {k: (min(r["median_step_s"] for r in v), max(r["median_step_s"] for r in v)) for k, v in by.items()}
        rows.append({"run": label, "step s, glibc": step["glibc"], "step s, tcmalloc": step["tcmalloc"],
                     "step speedup": f"{step['glibc'] / step['tcmalloc']:.2f}x",
                     "step range over rounds (glibc / tcmalloc)":
                         f"{spread['glibc'][0]:.3f}-{spread['glibc'][1]:.3f} / "
                         f"{spread['tcmalloc'][0]:.3f}-{spread['tcmalloc'][1]:.3f}",
                     "eval sentences/s, glibc": ev["glibc"], "eval sentences/s, tcmalloc": ev["tcmalloc"],
                     "eval speedup": f"{ev['tcmalloc'] / ev['glibc']:.2f}x"})
    ours, peer = rows[0], rows[-1]
    body = (f"tcmalloc: `{tc}`. Medians over {args.rounds} rounds, each cell its own process; a step is the median "
            "of steps 3-11 of that process.\n\n" + table(rows, list(rows[0])) + "\n\n"
            f"Same allocator on both sides, tasktune's prompt-tuning step leads the tuned PEFT step "
            f"{peer['step s, glibc'] / ours['step s, glibc']:.1f}x on glibc and "
            f"{peer['step s, tcmalloc'] / ours['step s, tcmalloc']:.1f}x on tcmalloc. `tasktune` preloads tcmalloc "
            "where it is installed (TASKTUNE_MALLOC=system turns that off); the benchmarks' own children run on "
            "the benchmark's allocator, named in the machine line.")
    write_section("allocator", "The allocator: glibc malloc against tcmalloc", "python benchmarks/allocator_trial.py",
                  body, {"tcmalloc": tc, "rounds": args.rounds, "results": results, "rows": rows}, commit=commit)


if __name__ == "__main__":
    main()
