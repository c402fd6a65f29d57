"""Where the memory of a prompt-tuning run goes: RSS (current and peak) after each stage.

    python benchmarks/memory.py [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import psutil
import torch  # noqa: F401  (the first stage measures python + torch)

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def snap(stage: str, rows: list) -> None:
    rss = psutil.Process().memory_info().rss / 1e9
    # ru_maxrss is in KiB on Linux, and the kernel raises its high-water mark lazily: the current RSS can
    # be above it for a moment, so the peak so far is the larger of the two
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, rss)
    rows.append({"stage": stage, "RSS GB": round(rss, 3), "peak RSS GB": round(peak, 3)})
    print(rows[-1], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--one", action="store_true")
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=768)
    ap.add_argument("--plain", action="store_true", help="train on plain weights (train --no-packed-weights)")
    args = ap.parse_args()
    if not args.one:
        return report()
    rows: list = []
    snap("python + torch imported", rows)
    import transformers  # noqa: F401

    from tasktune.backbone import load_backbone
    from tasktune.build import build_task
    from tasktune.data import load_splits
    from tasktune.methods import PromptTuningConfig

    snap("transformers + tasktune imported", rows)
    bb = load_backbone("smollm2-135m", args.dtype)
    weights = sum(p.numel() * p.element_size() for p in bb.model.parameters()) / 1e9
    snap(f"backbone loaded ({weights:.3f} GB of weights)", rows)
    data = load_splits(str(DATA))
    task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=20), "Review: {text}\nSentiment:{answer}",
                      data.labels, max_length=96)
    snap("data read, task built", rows)
    from speed_vs_peft import train_steps

    from tasktune.backbone.packing import unpacked
    from tasktune.train.loop import checkpointing

    with unpacked(bb.model, args.plain), checkpointing(task, args.checkpointing):
        train_steps(task, [data.train[i * 16:(i + 1) * 16] for i in range(4)], 3e-2, args.max_tokens)
    snap("4 training steps (batch 16)", rows)
    task.predict_scores(data.dev[:128], 32)
    snap("eval of 128 sentences (batch 32)", rows)
    print("ROWS " + json.dumps(rows))


def report() -> None:
    from report import table, write_section

    out = {}
    for name, flags in (("bf16", []), ("bf16, plain weights", ["--plain"]),
                        ("bf16, whole batches", ["--max-tokens", "0"]),
                        ("bf16, whole batches + gradient checkpointing", ["--max-tokens", "0", "--checkpointing"]),
                        ("fp32", ["--dtype", "float32"])):
        proc = subprocess.run([sys.executable, __file__, "--one", *flags], capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("ROWS ")]
        if not line:
            raise SystemExit(proc.stderr[-2000:])
        out[name] = json.loads(line[0][5:])
    stages = [r["stage"] for r in out["bf16"]]
    rows = [{"stage": st, **{f"{n}: RSS / peak GB": f"{out[n][i]['RSS GB']:.2f} / {out[n][i]['peak RSS GB']:.2f}"
                             for n in out}} for i, st in enumerate(stages)]
    body = ("Prompt tuning (20 tokens) on SST-2 train batches of 16, one process per column; RSS after each stage "
            "and the peak so far (ru_maxrss). 'bf16' and 'fp32' train as tasktune's trainer does on CPU: each batch "
            "in equal length-sorted pieces of at most 768 padded tokens, gradients summed (the same update); 'whole "
            "batches' runs all 16 rows in one forward. The weights' size is in the 'backbone loaded' row (the tied "
            "LM head is stored once). All columns are in GB of 10^9 bytes (ru_maxrss is read in KiB and "
            "converted; the kernel raises it lazily, so the peak is the larger of it and the current RSS). Loading "
            "maps the cached safetensors file (a bf16 copy of the cache is kept for bf16 loads) and runs a probe "
            "forward that checks the fused q/k/v (every weight page is read there, and the originals' pages are "
            "given back). bf16 weights are then packed for oneDNN one at a time, each plain weight's pages "
            "given back as it is (backbone/packed_weights.py); the first backward adds a second packed copy (of "
            "W^T), which 'plain weights' (`train --no-packed-weights`) goes without; 'training' adds the "
            "activations kept for backward, which gradient checkpointing "
            "recomputes instead (about a third more compute). What the bf16 column's peak holds beyond weights and "
            "imports is activations plus allocator slack (the allocator keeps freed blocks for reuse).\n\n"
            + table(rows, list(rows[0])))
    write_section("memory", "Memory breakdown (peak RSS) of prompt tuning", "python benchmarks/memory.py", body, out)


if __name__ == "__main__":
    main()
