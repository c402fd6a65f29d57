"""Accuracy parity: tasktune's fast path vs a plain reference path on SST-2 dev (zero-shot).

    python benchmarks/parity.py

fast: answer-position-only logits, length-sorted batches of 32, right padding (bf16 and fp32
backbones). reference: plain transformers, fp32, one sentence at a time, full logits of the
whole sequence, last position read; no tasktune code in the scoring path.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.data import load_task_data  # noqa: E402
from tasktune.methods import ZeroShotConfig  # noqa: E402
from tasktune.task import build_task  # noqa: E402

from report import table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
TEMPLATE = "Review: {text}\nSentiment:{answer}"


def main() -> None:
    data = load_task_data(str(DATA))
    rows = []
    for dtype in ("bfloat16", "float32"):
        bb = load_backbone("smollm2-135m", dtype)
        m = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, data.labels, max_length=96).evaluate(data.dev)
        rows.append({"path": f"tasktune fast ({dtype})", "dev accuracy": m["accuracy"],
                     "examples/s": m["examples_per_second"]})
        print(rows[-1], flush=True)
    model, tok = bb.model, bb.tokenizer  # fp32
    words = [tok(" " + lab, add_special_tokens=False).input_ids[0] for lab in data.labels]
    correct, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        for ex in data.dev:
            ids = tok(f"Review: {ex.fields['text']}\nSentiment:", return_tensors="pt").input_ids
            logits = model(ids).logits[0, -1]
            correct += data.labels[int(logits[words].argmax())] == ex.label
    rows.append({"path": "reference (plain transformers, fp32, batch 1, full logits)",
                 "dev accuracy": correct / len(data.dev), "examples/s": len(data.dev) / (time.perf_counter() - t0)})
    print(rows[-1], flush=True)
    diff = abs(rows[1]["dev accuracy"] - rows[2]["dev accuracy"]) * 100
    body = (f"SST-2 dev (872), template `{TEMPLATE!r}`, zero-shot. fp32 fast path vs reference: **{diff:.2f} "
            "points** apart. The bf16 row shows what the bf16 backbone alone changes.\n\n"
            + table(rows, list(rows[0])))
    write_section("parity", "Accuracy parity: fast path vs plain reference", "python benchmarks/parity.py", body, rows)


if __name__ == "__main__":
    main()
