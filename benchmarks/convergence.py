"""Which prompt-tuning defaults converge fastest: init, learning rate and warmup, on three tasks.

    python benchmarks/convergence.py [--datasets sst2,trec,subj] [--configs default,warmup2,...]
        [--seeds 0,1] [--cap 150] [--extend]

Each run is `tasktune train` as a user runs it under the time-to-accuracy protocol (PROTOCOLS.md,
benchmarks/time_to_accuracy.py): 20 virtual tokens, batch 16, max length 96, a 300-step schedule,
an evaluation every 25 steps on the whole evaluation split. A run stops at its dataset's
threshold (SST-2: 0.88, the time-to-accuracy threshold) or after the evaluation at step `--cap`.
SST-2 chooses (its shared dev split, as the issue that asked for these defaults says); TREC and
SUBJ confirm: they have no dev split, so 500 examples of train (seeded shuffle, the same for
every run) are their evaluation split and the rest their train split.

Steps to the threshold and accuracy at each evaluation do not depend on the machine's load
(training is deterministic given the seed); the seconds do, so run this alone.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_to_accuracy import run_tasktune_cmd  # noqa: E402

from report import ROOT, machine, table, write_section  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"

DATASETS = {  # template (the label names are the answer words), threshold (0: none, the run goes to --cap)
    "sst2": ("Review: {text}\nSentiment:{answer}", 0.88),
    "trec": ("Question: {text}\nAnswer type:{answer}", 0.0),
    "subj": ("Text: {text}\nSubjective or objective:{answer}", 0.0),
}
INSTRUCTIONS = {
    "sst2": "Classify the sentiment of the review as positive or negative.",
    "trec": "Classify the question by the type of its answer.",
    "subj": "Classify the text as subjective or objective.",
}
CONFIGS = {  # name -> `tasktune train` options ({instruction}: the dataset's task description)
    "default": [],
    "warmup2": ["--warmup-ratio", "0.02"],
    "lr1e-1-warmup2": ["--lr", "0.1", "--warmup-ratio", "0.02"],
    "class-label": ["--init", "class-label"],
    "class-label-warmup2": ["--init", "class-label", "--warmup-ratio", "0.02"],
    "instruction-init": ["--init", "text", "--init-text", "{instruction}"],
    "instruction-init-warmup2": ["--init", "text", "--init-text", "{instruction}", "--warmup-ratio", "0.02"],
}


def prepare(name: str, work: Path) -> Path:
    """The dataset's train + evaluation files (TREC/SUBJ: 500 of train held out, seeded)."""
    out = work / name
    if out.exists():
        return out
    out.mkdir(parents=True)
    src = SHARED / name
    if (src / "dev.jsonl").is_file():
        for split in ("train", "dev"):
            (out / f"{split}.jsonl").symlink_to((src / f"{split}.jsonl").resolve())
        return out
    rows = (src / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    random.Random(0).shuffle(rows)
    (out / "dev.jsonl").write_text("".join(rows[:500]), encoding="utf-8")
    (out / "train.jsonl").write_text("".join(rows[500:]), encoding="utf-8")
    return out


def one_run(args, dataset: str, config: str, seed: int, work: Path) -> dict:
    template, threshold = DATASETS[dataset]
    opts = [o.replace("{instruction}", INSTRUCTIONS[dataset]) for o in CONFIGS[config]] + ["--seed", str(seed)]
    row = {"dataset": dataset, "config": config, "options": opts, "seed": seed, "threshold": threshold,
           "commit": args.commit, "machine": machine()}
    try:
        curve, total = run_tasktune_cmd(prepare(dataset, work), work / f"{dataset}-{config}-{seed}", template,
                                        opts, threshold, args.max_steps, args.eval_every, args.dtype, args.device,
                                        cap=args.cap)
    except RuntimeError as e:
        return {**row, "error": str(e)[:200]}
    hit = next((e for e in curve if threshold and e["accuracy"] >= threshold), None)
    return {**row, "curve": curve, "run_seconds": total, "reached_step": hit["step"] if hit else None,
            "seconds_to_threshold": hit["seconds"] if hit else None}


def summary(runs: list[dict]) -> list[dict]:
    """One row per dataset x config: accuracy at each evaluation step (mean over seeds), steps to
    the threshold per seed."""
    rows = []
    keys = dict.fromkeys((r["dataset"], r["config"]) for r in runs)
    for dataset, config in keys:
        group = [r for r in runs if (r["dataset"], r["config"]) == (dataset, config) and "curve" in r]
        if not group:
            continue
        row = {"dataset": dataset, "config": config, "seeds": len(group),
               "steps to threshold (per seed)": ", ".join(str(r["reached_step"] or f">{r['curve'][-1]['step']}")
                                                          for r in group) if group[0]["threshold"] else "-"}
        for step in (25, 50, 75, 100):
            accs = [e["accuracy"] for r in group for e in r["curve"] if e["step"] == step]
            if len(accs) == len(group):  # a seed that stopped earlier (at its threshold) has no later point
                row[f"acc@{step}"] = f"{100 * statistics.mean(accs):.1f}"
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="sst2")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--cap", type=int, default=150, help="stop a run after its evaluation at this step")
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--extend", action="store_true", help="keep docs/results/convergence.json's runs, add these")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        sys.exit(f"unknown config(s) {unknown}; known: {', '.join(CONFIGS)}")
    from tasktune.provenance import git_commit

    args.commit = git_commit()
    path = ROOT / "docs" / "results" / "convergence.json"
    earlier = json.loads(path.read_text()) if args.extend and path.is_file() else {"runs": []}
    # runs from before each run named its machine ran on the one the file names
    runs = [{"machine": earlier.get("machine", "unrecorded"), **r} for r in earlier["runs"]]
    done = {(r["dataset"], r["config"], r["seed"]) for r in runs if "curve" in r}
    plan = [(d, c, int(s)) for d in args.datasets.split(",") for c in args.configs.split(",")
            for s in args.seeds.split(",") if (d, c, int(s)) not in done]
    work = Path(tempfile.mkdtemp(prefix="convergence-"))
    try:
        for dataset, config, seed in plan:
            row = one_run(args, dataset, config, seed, work)
            runs = [r for r in runs if (r["dataset"], r["config"], r["seed"]) != (dataset, config, seed)] + [row]
            print({k: v for k, v in row.items() if k != "curve"}, flush=True)
            publish(args, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(args, runs: list[dict]) -> None:
    cols = ["dataset", "config", "seeds", "steps to threshold (per seed)", "acc@25", "acc@50", "acc@75", "acc@100"]
    configs = "\n".join(f"- `{name}`: `{' '.join(opts) or '(tasktune defaults)'}`" for name, opts in CONFIGS.items()
                        if any(r["config"] == name for r in runs))
    body = (f"Prompt tuning (20 tokens) as `tasktune train` runs it, a {args.max_steps}-step schedule, an evaluation "
            f"every {args.eval_every} steps; SST-2 stops at 0.88 on its whole dev split (the time-to-accuracy "
            f"threshold), TREC and SUBJ run to step {args.cap} on 500 examples held out of their train split. "
            f"Accuracy in percent, mean over seeds.\n\n{configs}\n\n" + table(summary(runs), cols))
    machines = Counter(r["machine"] for r in runs)
    if len(machines) > 1:  # steps and accuracies compare across machines; seconds would not (none are shown)
        body += "\n\nRuns by machine: " + "; ".join(f"{m}: {n}" for m, n in machines.items()) + "."
    if args.no_write:
        print(body)
        return
    command = (f"python benchmarks/convergence.py --datasets {args.datasets} --configs {args.configs} "
               f"--seeds {args.seeds} --cap {args.cap}" + (" --extend (each run names its commit in the results file)"
                                                           if args.extend else ""))
    write_section("convergence", "Prompt-tuning defaults that converge faster (SST-2 chooses, TREC and SUBJ confirm)",
                  command, body, {"runs": runs, "cap": args.cap}, commit=args.commit)


if __name__ == "__main__":
    main()
