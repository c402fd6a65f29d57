"""Fine-tuning vs fine-tuning + SMART (adversarial only, Bregman only, both) on low-resource
SST-2 and on SST-5, 3 seeds each, with prompt tuning on the same data for reference, and the
cost of SMART per step.

    python benchmarks/smart_sst.py [--steps 60] [--seeds 3] [--datasets sst2,sst5]

Training data: 1,000 examples sampled with a fixed seed (0) from ../shared/data/<task>/train;
evaluation on the full dev split. Fine-tuning trains every weight (fp32 master weights, bf16
autocast: --precision auto on this CPU) through the LM head with the PROTOCOLS template
(PET-style cloze). Seeds vary data order and the adversarial noise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task  # noqa: E402
from tasktune.data import load_splits  # noqa: E402
from tasktune.methods import FineTuningConfig, PromptTuningConfig, ZeroShotConfig  # noqa: E402
from tasktune.regularizers.smart import SmartConfig  # noqa: E402
from tasktune.train import TrainConfig, train  # noqa: E402

from report import RESULTS, table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEMPLATE = "Review: {text}\nSentiment:{answer}"
VERBALIZERS = {"sst2": None,  # negative / positive are single tokens already
               "sst5": {"very negative": " terrible", "negative": " bad", "neutral": " okay",
                        "positive": " good", "very positive": " great"}}
VARIANTS = {"fine-tuning": None,
            "FT + SMART adversarial (λs=1)": SmartConfig(smart=True, smart_lambda=1.0, smart_mu=0.0),
            "FT + SMART Bregman (μ=1)": SmartConfig(smart=True, smart_lambda=0.0, smart_mu=1.0),
            "FT + SMART both": SmartConfig(smart=True, smart_lambda=1.0, smart_mu=1.0)}


def sample(rows, n, seed):
    return [rows[i] for i in torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:n].tolist()]


def radius_variants(eps: float) -> dict:
    """Plain fine-tuning vs the adversarial term with a radius (and step) of `eps`."""
    return {"fine-tuning": None,
            f"FT + SMART adversarial (λs=1, eps = step = {eps:g})": SmartConfig(
                smart=True, smart_lambda=1.0, smart_mu=0.0, smart_eps=eps, smart_step=eps)}


def run_dataset(name: str, args, ft_bb, pt_bb, work: Path, log: dict) -> list[dict]:
    data = load_splits(str(DATA / name))
    train_set, dev = sample(data.train, args.n_train, 0), data.dev
    verb = VERBALIZERS[name]
    majority = Counter(ex.label for ex in dev).most_common(1)[0][1] / len(dev)
    zs = build_task(pt_bb, "zero-shot", ZeroShotConfig(), TEMPLATE, data.labels, verb, max_length=96)
    zero = zs.evaluate(dev)["accuracy"]
    original = {k: v.clone() for k, v in ft_bb.model.state_dict().items()}
    runs: dict[str, list[dict]] = {}
    cfg = dict(max_steps=args.steps, batch_size=16, max_length=96, eval_every=0, save_every=10**9)
    for seed in range(1, args.seeds + 1):
        for variant, smart in (radius_variants(args.radius) if args.radius else VARIANTS).items():
            ft_bb.model.load_state_dict(original)  # every run starts from the pretrained weights
            task = build_task(ft_bb, "fine-tuning", FineTuningConfig(), TEMPLATE, data.labels, verb, 96, seed)
            out = train(task, train_set, dev, TrainConfig(lr=2e-5, seed=seed, **cfg), work / f"{name}-{variant}-{seed}",
                        quiet=True, smart=smart)
            shutil.rmtree(work / f"{name}-{variant}-{seed}")  # the 0.5 GB checkpoint is not needed
            runs.setdefault(variant, []).append(out)
            per_step = out["train_seconds"] / out["steps"]
            print(name, seed, variant, f"{out['best_dev_score']:.4f}", f"{per_step:.2f} s/step", flush=True)
        log[name] = {"zero_shot": zero, "majority": majority, "runs": runs}  # the radius run's results too
        if args.radius:
            continue
        task = build_task(pt_bb, "prompt-tuning", PromptTuningConfig(prompt_length=20), TEMPLATE, data.labels, verb, 96,
                          seed)
        out = train(task, train_set, dev, TrainConfig(lr=3e-2, seed=seed, **cfg), work / f"{name}-pt-{seed}",
                    quiet=True)
        runs.setdefault("prompt tuning (20 tokens, bf16 backbone)", []).append(out)
        print(name, seed, "prompt tuning", f"{out['best_dev_score']:.4f}", flush=True)
        log[name] = {"zero_shot": zero, "majority": majority, "runs": runs}
        (Path(tempfile.gettempdir()) / "smart_sst.partial.json").write_text(json.dumps(log, indent=1, default=float))
    ft_bb.model.load_state_dict(original)
    plain = statistics.mean(r["train_seconds"] / r["steps"] for r in runs["fine-tuning"])
    rows = [{"method": "zero-shot (same template)", "dev acc mean": zero},
            {"method": "majority class", "dev acc mean": majority}]
    for variant, outs in runs.items():
        acc = [r["best_dev_score"] for r in outs]
        sps = statistics.mean(r["train_seconds"] / r["steps"] for r in outs)
        rows.append({"method": variant, "dev acc mean": statistics.mean(acc),
                     "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                     "per seed": ", ".join(f"{a:.3f}" for a in acc),
                     "trainable": f"{outs[0]['trainable_parameters']:,}",
                     "s/step": sps, "x plain FT": sps / plain if "prompt" not in variant else ""})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--datasets", default="sst2,sst5")
    ap.add_argument("--radius", type=float, default=0.0,
                    help="only plain fine-tuning vs the adversarial term at this radius (section smart_radius)")
    args = ap.parse_args()
    ft_bb, pt_bb = load_backbone("smollm2-135m", dtype="float32"), load_backbone("smollm2-135m")
    log, body = {}, ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        with tempfile.TemporaryDirectory() as work:  # a fine-tuned checkpoint is ~0.5 GB per run
            rows = run_dataset(name, args, ft_bb, pt_bb, Path(work), log)
        n_dev = len(load_splits(str(DATA / name)).dev)
        body += (f"### {name.upper()} ({args.n_train} training examples sampled with seed 0; dev {n_dev})\n\n"
                 + table(rows, ["method", "dev acc mean", "std", "per seed", "trainable", "s/step", "x plain FT"])
                 + "\n\n")
        print(body, flush=True)
    n = ft_bb.model.num_parameters()
    body = (f"Fine-tuning: all {n:,} weights (100% of the backbone; P/N = {n / args.n_train:,.0f} parameters "
            "per training example), fp32 master weights with bf16 autocast (`--precision auto`), AdamW lr 2e-5, "
            f"{args.steps} steps of batch 16 (~{args.steps * 16 / args.n_train:.1f} epochs), LM head with the "
            "PROTOCOLS template (PET-style cloze; SST-5 words terrible / bad / okay / good / great), dev "
            "accuracy after the last step. SMART: K=1 ascent step, step 1e-3, eps 1e-5, l_inf, noise variance "
            "1e-5, symmetric KL, EMA teacher beta 0.99. Prompt tuning: 20 tokens, lr 3e-2, same batches and "
            f"steps, bf16 backbone. Seeds 1..{args.seeds} vary data order, the SMART noise and the prompt init. "
            "s/step is the mean wall time of a training step (forward, SMART's extra passes, backward, "
            "optimizer) on this 2-core CPU; 'x plain FT' is SMART's cost per step.\n\n" + body)
    command = f"python benchmarks/smart_sst.py --steps {args.steps} --seeds {args.seeds} --datasets {args.datasets}"
    if args.radius:
        write_section("smart_radius", f"SMART's adversarial term at radius {args.radius:g} (embedded SmolLM2-135M)",
                      command + f" --radius {args.radius:g}", body, log)
        return
    write_section("smart_sst", "Fine-tuning vs SMART on low-resource SST-2 and SST-5 (embedded SmolLM2-135M)",
                  command, body, log)


if __name__ == "__main__":
    main()
