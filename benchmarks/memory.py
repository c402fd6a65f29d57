"""Where the memory of a prompt-tuning run goes: RSS (current and peak) after each stage.

    python benchmarks/memory.py [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def snap(stage: str, rows: list) -> None:
    rss = psutil.Process().memory_info().rss / 1e9
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    rows.append({"stage": stage, "RSS GB": round(rss, 3), "peak RSS GB": round(peak, 3)})
    print(rows[-1], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    rows: list = []
    snap("python + torch imported", rows)
    import transformers  # noqa: F401

    from tasktune.backbone import load_backbone
    from tasktune.data import load_task_data
    from tasktune.methods import PromptTuningConfig
    from tasktune.task import build_task

    snap("transformers + tasktune imported", rows)
    bb = load_backbone("smollm2-135m", args.dtype)
    weights = sum(p.numel() * p.element_size() for p in bb.model.parameters()) / 1e9
    snap(f"backbone loaded ({weights:.3f} GB of weights)", rows)
    data = load_task_data(str(DATA))
    task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=20), "Review: {text}\nSentiment:{answer}",
                      data.labels, max_length=96)
    snap("data read, task built", rows)
    opt = torch.optim.AdamW(task.module.parameters(), lr=3e-2)
    for i in range(4):
        batch, labels = task.batch(data.train[i * 16:(i + 1) * 16])
        task.objective.loss(task.scores(batch), labels).backward()
        opt.step()
        opt.zero_grad()
    snap("4 training steps (batch 16)", rows)
    task.predict_scores(data.dev[:128], 32)
    snap("eval of 128 sentences (batch 32)", rows)
    from report import table

    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
