"""SST-2 with the embedded model (PROTOCOLS.md): zero-shot vs prompt tuning with each init.

    python benchmarks/sst2_prompt_tuning.py [--steps 300] [--inits random-uniform,sampled-vocab,class-label]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task  # noqa: E402
from tasktune.data import load_splits  # noqa: E402
from tasktune.methods import PromptTuningConfig, ZeroShotConfig  # noqa: E402
from tasktune.train import TrainConfig, train  # noqa: E402

from report import table, write_section  # noqa: E402

TEMPLATE = "Review: {text}\nSentiment:{answer}"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--inits", default="random-uniform,sampled-vocab,class-label")
    ap.add_argument("--prompt-length", type=int, default=20)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    data = load_splits(str(DATA))
    bb = load_backbone("smollm2-135m", args.dtype)
    dtype = str(bb.dtype).split(".")[-1]
    rows = []
    zs = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, data.labels, max_length=96)
    m = zs.evaluate(data.dev)
    rows.append({"method": "zero-shot", "init": "-", "dev acc (final)": m["accuracy"], "dev acc (best)": "-",
                 "trainable": 0, "artifact bytes": 0, "train s": 0, "real tok/s": "-",
                 "eval ex/s": m["examples_per_second"], "dtype": dtype})
    print(rows[-1], flush=True)
    for init in args.inits.split(","):
        cfg = TrainConfig(max_steps=args.steps, batch_size=16, max_length=96, seed=0, eval_every=100,
                          save_every=10**9, log_every=50)
        task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=args.prompt_length, init=init),
                          TEMPLATE, data.labels, max_length=96, seed=0)
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            summary = train(task, data.train, data.dev, cfg, out, quiet=True)
            wall = time.perf_counter() - t0
            size = sum(f.stat().st_size for f in Path(out).glob("*") if f.is_file() and f.suffix != ".jsonl")
            final = [line for line in (Path(out) / "metrics.jsonl").read_text().splitlines()
                     if '"dev_accuracy"' in line][-1]
        import json

        final_acc = json.loads(final)["dev_accuracy"]
        ev = task.evaluate(data.dev)
        rows.append({"method": "prompt-tuning", "init": init, "dev acc (final)": final_acc,
                     "dev acc (best)": summary["best_dev_score"], "trainable": summary["trainable_parameters"],
                     "artifact bytes": size, "train s": round(wall), "real tok/s": summary["tokens_per_second"],
                     "eval ex/s": ev["examples_per_second"], "dtype": dtype})
        print(rows[-1], flush=True)
    cols = list(rows[0])
    body = (f"Protocol: PROTOCOLS.md SST-2 (template `{TEMPLATE!r}`, verbalizer ' negative'/' positive', "
            f"{args.steps} steps, batch 16, max length 96, seed 0, AdamW lr 3e-2, 10% warmup + linear decay), "
            f"{args.prompt_length} virtual tokens, dev = 872 sentences. 'final' is the last step's weights, 'best' "
            "the best of the evaluations every 100 steps (selection on dev itself, so optimistic). "
            "Eval ex/s at batch 32 over all 872 dev sentences, train s includes the three dev evaluations.\n\n"
            + table(rows, cols))
    write_section("sst2_prompt_tuning", "SST-2: zero-shot vs prompt tuning by init (embedded SmolLM2-135M)",
                  f"python benchmarks/sst2_prompt_tuning.py --steps {args.steps}", body, rows)


if __name__ == "__main__":
    main()
