"""How the cost of a prompt-tuning training step grows: step time and peak memory against sequence
length, batch size and number of virtual tokens, on the embedded SmolLM2-135M and, where its
packages are installed, Gemma 3 270M (`gemma3-270m`, Gemma Terms of Use).

Rows hold the asked number of real tokens; the virtual tokens come on top.
Every point is its own process (so its peak RSS is its own): the backbone in the dtype `auto`
picks, one task of --virtual virtual tokens, synthetic rows of exactly the asked number of tokens
(the SST-2 template around seeded random words, every row different; content does not change the
cost, but identical rows would, since the prefix they share runs once), the trainer's own
step (length-sorted pieces of at most 768 padded tokens on CPU, the soft prompt run once per
step, fused AdamW); one warm-up step, then the median of --steps steps. Estimated FLOP/s count
4 x non-embedding parameters per token run through the layers (forward plus the backward to the
activations; no weight gradients), against the bf16 GEMM peak measured in the same run.

    python benchmarks/cost_curves.py [--models smollm2-135m,gemma3-270m] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_clock import gemm_peak, peak_gb  # noqa: E402

from report import RESULTS, device_section, machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "Review: {text}\nSentiment:{answer}"
AXES = {"sequence tokens": [64, 128, 256, 512, 1024], "batch size": [1, 4, 16, 64], "virtual tokens": [1, 5, 20, 100]}
BASE = {"sequence tokens": 64, "batch size": 16, "virtual tokens": 20}


WORDS = "film movie good bad great plot acting story fun dull the a and is was not very really".split()


def rows_of(task, n_tokens: int, n_rows: int, seed: int = 0):
    """n_rows examples of different words (seeded) whose rendered rows hold about n_tokens real
    tokens (template and words; the virtual tokens come on top, so that axis changes only them).
    Rows must differ, or the prefix their rows share would run once."""
    import random

    from tasktune.data.readers import Example

    rng = random.Random(seed)
    virtual = task.template.n_soft
    base = len(task.encoder.classification_rows(Example({"text": "film"}))[0].ids) - virtual
    words = max(1, n_tokens - base + 1)
    exs = [Example({"text": " ".join(rng.choice(WORDS) for _ in range(words))}, "positive", "synthetic")
           for _ in range(n_rows)]
    lengths = [len(task.encoder.classification_rows(ex)[0].ids) - virtual for ex in exs]
    return exs, statistics.mean(lengths)


def one(model: str, axis: str, value: int, steps: int, device: str = "cpu") -> dict:
    from speed_vs_peft import nonembedding_params, train_steps

    from tasktune.backbone import load_backbone
    from tasktune.build import build_task
    from tasktune.methods import PromptTuningConfig

    cfg = {**BASE, axis: value}
    bb = load_backbone(model, device=device)
    loaded = psutil.Process().memory_info().rss if bb.device.type == "cpu" else torch.cuda.memory_allocated()
    task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=cfg["virtual tokens"]), TEMPLATE,
                      ["positive", "negative"], max_length=cfg["sequence tokens"] + cfg["virtual tokens"] + 64)
    exs, length = rows_of(task, cfg["sequence tokens"], cfg["batch size"])
    runs = train_steps(task, [exs] * (steps + 1), 3e-2)[1:]
    step = statistics.median(t for t, _, _ in runs)
    pieces = len(runs[0][1])
    tokens = sum(b.ids.numel() for b in runs[0][1])
    shared = task.prefix_cache.shared_length if task.prefix_cache is not None else (lambda b: 0)
    processed = tokens - sum(len(b) * shared(b) for b in runs[0][1]) + max(shared(b) for b in runs[0][1])
    peak = peak_gb(device) * 1e9  # the process's RSS on a CPU, the allocator's peak on CUDA
    n = nonembedding_params(bb.model)
    return {"model": model, "axis": axis, "value": value, **cfg, "row_tokens": length, "pieces": pieces,
            "step_s": step, "tokens_per_s": tokens / step, "flops_s": 4 * n * processed / step,
            "peak_rss_gb": peak / 1e9, "peak_over_loaded_gb": (peak - loaded) / 1e9,
            "dtype": str(bb.dtype).split(".")[-1], "nonembedding_params": n}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for col, axis in enumerate(AXES):
        for model in sorted({r["model"] for r in rows}):
            pts = sorted((r for r in rows if r["axis"] == axis and r["model"] == model), key=lambda r: r["value"])
            xs = [r["value"] for r in pts]
            axes[0, col].plot(xs, [r["step_s"] for r in pts], marker="o", label=model)
            axes[1, col].plot(xs, [r["peak_over_loaded_gb"] for r in pts], marker="o", label=model)
        for row, label in ((0, "step seconds"), (1, "peak RSS over the loaded model, GB")):
            axes[row, col].set_xscale("log", base=2)
            axes[row, col].set_yscale("log") if row == 0 else None
            axes[row, col].set_xlabel(axis)
            axes[row, col].set_ylabel(label)
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].legend()
    fig.suptitle("Prompt-tuning training step: cost against sequence length, batch size, virtual tokens")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu | cuda: the same points on a GPU")
    ap.add_argument("--one", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        model, axis, value = args.one
        print("RESULT " + json.dumps(one(model, axis, int(value), args.steps, args.device)), flush=True)
        return
    from tasktune.backbone.aliases import ALIASES, locate_gguf
    from tasktune.provenance import git_commit

    commit = git_commit()  # before the plot and results are written (they are tracked files)
    models = [m for m in args.models.split(",") if m not in ALIASES or locate_gguf(ALIASES[m]) is not None]
    peak = gemm_peak(torch.bfloat16, args.device)
    rows = []
    for model in models:
        for axis, values in AXES.items():
            for value in values:
                proc = subprocess.run([sys.executable, __file__, "--one", model, axis, str(value), "--steps",
                                       str(args.steps), "--device", args.device], capture_output=True, text=True)
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if not line:
                    raise SystemExit(f"{model} {axis}={value}: {proc.stderr[-1500:]}")
                rows.append(json.loads(line[0][7:]))
                print(json.dumps(rows[-1]), flush=True)
    name = device_section("cost_curves", args.device)  # a GPU run is its own section (cost_curves_h200)
    plot(rows, ROOT / "docs" / "img" / f"{name}.png")
    command = "python benchmarks/cost_curves.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"rows": rows, "gemm_peak_bf16": peak, "commit": commit, "command": command,
         "machine": machine(args.device), "steps": args.steps}, indent=1) + "\n")
    from tasktune.experiments.docs import result_section

    where = f" on {machine(args.device).split(' (')[0]}" if args.device != "cpu" else ""
    write_section(name, f"How the cost of a training step grows{where}", command,
                  result_section(RESULTS, name) + f"\n\n![cost curves](img/{name}.png)", device=args.device)


if __name__ == "__main__":
    main()
