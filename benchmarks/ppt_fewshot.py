"""PPT: pre-train a soft prompt on the corpus (self-supervised), then 32-shot SST-2 prompt tuning
from that init vs from sampled vocabulary, 5 seeds (PROTOCOLS.md few-shot).

    python benchmarks/ppt_fewshot.py [--ppt-steps 150] [--steps 40] [--ppt-task pair]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task  # noqa: E402
from tasktune.data import load_splits  # noqa: E402
from tasktune.methods import PromptTuningConfig, ZeroShotConfig  # noqa: E402
from tasktune.ppt.corpus import read_corpus  # noqa: E402
from tasktune.ppt.self_supervised import build  # noqa: E402
from tasktune.train import TrainConfig, train  # noqa: E402

from report import table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEMPLATE = "Review: {text}\nSentiment:{answer}"


def sample(rows, n, seed):
    return [rows[i] for i in torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:n].tolist()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ppt-steps", type=int, default=150)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--ppt-task", default="pair")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        run(args, Path(work))


def run(args: argparse.Namespace, work: Path) -> None:
    bb = load_backbone("smollm2-135m")
    docs = read_corpus(DATA / "corpus" / "documents.jsonl")
    rows, template, verb = build(args.ppt_task, docs, 4000 + 200, seed=0)
    t0 = time.perf_counter()
    ppt = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=20), template, list(verb), verb, 160)
    pre = train(ppt, rows[200:], rows[:200], TrainConfig(max_steps=args.ppt_steps, batch_size=16, max_length=160,
                                                         eval_every=50, save_every=10**9), work / "ppt", quiet=True)
    pre_s = time.perf_counter() - t0
    print("pretrained", pre, flush=True)

    sst = load_splits(str(DATA / "sst2"))
    results: dict[str, list[float]] = {"majority class": [], "zero-shot": [], "PT sampled-vocab init": [],
                                       "PT PPT init": []}
    zs = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, sst.labels, max_length=96)
    for seed in range(1, 6):
        tr, dev32 = sample(sst.train, 32, seed), sample(sst.dev, 32, seed)
        held = [ex for ex in sst.dev if ex not in dev32]
        # the held-out set differs per seed: the baselines are measured on each one, not copied
        zero = zs.evaluate(held)
        results["majority class"].append(zero["majority_baseline"])
        results["zero-shot"].append(zero["accuracy"])
        for name, cfg in (("PT sampled-vocab init", PromptTuningConfig(prompt_length=20)),
                          ("PT PPT init", PromptTuningConfig(prompt_length=20, init="pretrained",
                                                             init_from=str(work / "ppt")))):
            task = build_task(bb, "prompt-tuning", cfg, TEMPLATE, sst.labels, max_length=96, seed=seed)
            train(task, tr, dev32, TrainConfig(max_steps=args.steps, batch_size=8, max_length=96, eval_every=10,
                                               save_every=10**9, seed=seed), work / f"{name}-{seed}", quiet=True)
            results[name].append(task.evaluate(held)["accuracy"])
        print(seed, {k: v[-1] for k, v in results.items()}, flush=True)
    rows_out = [{"method": k, "mean": statistics.mean(v), "std": statistics.stdev(v),
                 "per seed": ", ".join(f"{x:.3f}" for x in v)} for k, v in results.items()]
    body = (f"Pre-training: PPT '{args.ppt_task}' task from ../shared/data/corpus ({len(docs)} documents after "
            f"cleaning, 4,000 examples), 20-token prompt, {args.ppt_steps} steps, batch 16, lr 3e-2 "
            f"({pre_s:.0f} s; dev accuracy on 200 held-out pretraining examples {pre['best_dev_score']:.3f}, "
            "chance 0.333). Downstream: SST-2, 32 training and 32 dev sentences sampled with seeds 1-5, "
            f"{args.steps} steps, batch 8, lr 3e-2, best of evaluations every 10 steps on the 32 dev sentences; "
            "accuracy on the other 840 dev sentences (a different 840 per seed: the majority class and "
            "zero-shot rows are measured on each seed's own set, so their spread is the sets', not the "
            "methods').\n\n" + table(rows_out, list(rows_out[0])))
    write_section("ppt_fewshot", "PPT: pre-trained prompt init for 32-shot SST-2 (embedded SmolLM2-135M)",
                  f"python benchmarks/ppt_fewshot.py --ppt-steps {args.ppt_steps} --steps {args.steps} "
                  f"--ppt-task {args.ppt_task}", body, {"pretrain": pre, "results": results})


if __name__ == "__main__":
    main()
