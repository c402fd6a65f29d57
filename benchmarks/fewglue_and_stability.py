"""FewGLUE (32-shot) with the embedded model, and P-tuning's stability claim.

    python benchmarks/fewglue_and_stability.py [--tasks boolq,cb,rte] [--steps 80]

1. For each task: manual patterns zero-shot (each pattern), PET-style fine-tuning (pattern 0,
   all weights, fp32, LM-head cloze objective), P-tuning (frozen LM, LSTM encoder, the
   preset's pseudo-token pattern); dev32 accuracy with the majority baseline. One seed
   (PROTOCOLS.md asks 5: not affordable on this CPU in one session; the spread is unknown).
2. SST-2 dev (first 300): accuracy of 4 manual templates zero-shot vs the same templates with
   P-tuning pseudo tokens ([P:3] before the input and before the answer cue), 1,000 training
   sentences; the std across templates is the stability measure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task  # noqa: E402
from tasktune.data import load_splits  # noqa: E402
from tasktune.methods import FineTuningConfig, PTuningConfig, ZeroShotConfig  # noqa: E402
from tasktune.templates.fewglue import FEWGLUE_PRESETS  # noqa: E402
from tasktune.train import TrainConfig, train  # noqa: E402

from report import table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SST_TEMPLATES = ["Review: {text}\nSentiment:{answer}", "{text}\nThe sentiment of this review is{answer}",
                 "Text: {text}\nIs this review positive or negative?{answer}", "{text} All in all, it was{answer}"]


def fit(task, train_rows, dev_rows, steps, lr, bs=8):
    cfg = TrainConfig(max_steps=steps, batch_size=bs, lr=lr, eval_every=max(10, steps // 4), save_every=10**9,
                      log_every=20, seed=0, max_length=320)
    with tempfile.TemporaryDirectory() as out:
        train(task, train_rows, dev_rows, cfg, out, quiet=True)
    return task.evaluate(dev_rows)["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="boolq,cb,rte")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--ft-steps", type=int, default=40)
    args = ap.parse_args()
    bb = load_backbone("smollm2-135m")
    rows = []
    for name in args.tasks.split(","):
        preset, data = FEWGLUE_PRESETS[name], load_splits(str(DATA / "fewglue" / name))
        labels = list(preset.verbalizer)
        t0 = time.perf_counter()
        row = {"task": name}
        for i, pattern in enumerate(preset.patterns):
            task = build_task(bb, "zero-shot", ZeroShotConfig(), pattern, labels, preset.verbalizer, 320)
            m = task.evaluate(data.dev)
            row[f"zero-shot p{i}"] = m["accuracy"]
        row["majority"] = m["majority_baseline"]
        pt = build_task(bb, "p-tuning", PTuningConfig(encoder="lstm"), preset.p_tuning, labels, preset.verbalizer,
                        320)
        row["p-tuning (frozen LM)"] = fit(pt, data.train, data.dev, args.steps, 1e-3)
        ft_bb = load_backbone("smollm2-135m", "float32")
        ft = build_task(ft_bb, "fine-tuning", FineTuningConfig(), preset.patterns[0], labels, preset.verbalizer, 320)
        row["PET-style fine-tuning p0"] = fit(ft, data.train, data.dev, args.ft_steps, 2e-5)
        del ft, ft_bb
        row["seconds"] = round(time.perf_counter() - t0)
        rows.append(row)
        print(row, flush=True)

    sst = load_splits(str(DATA / "sst2"))
    dev, train_rows = sst.dev[:300], sst.train[:1000]
    stab = []
    for tmpl in SST_TEMPLATES:
        zs = build_task(bb, "zero-shot", ZeroShotConfig(), tmpl, sst.labels, max_length=96).evaluate(dev)["accuracy"]
        p_tmpl = "[P:3] " + tmpl.replace("\n", " [P:3]\n", 1) if "\n" in tmpl else "[P:3] " + tmpl
        pt = build_task(bb, "p-tuning", PTuningConfig(encoder="lstm"), p_tmpl, sst.labels, max_length=96)
        acc = fit(pt, train_rows, dev, args.steps, 1e-3, bs=16)
        stab.append({"template": tmpl.replace("\n", "\\n"), "zero-shot": zs, "P-tuning": acc,
                     "P-tuning template": p_tmpl.replace("\n", "\\n")})
        print(stab[-1], flush=True)
    spread = {k: statistics.stdev(r[k] for r in stab) for k in ("zero-shot", "P-tuning")}
    cols = list(rows[0])
    body = ("### FewGLUE dev32 (32 train, 32 dev)\n\n"
            f"P-tuning: {args.steps} steps, batch 8, lr 1e-3, LSTM encoder, best of 4 evaluations on dev32. "
            f"Fine-tuning: {args.ft_steps} steps, batch 8, lr 2e-5, fp32, best of 4 evaluations. Patterns and "
            "verbalizers: src/tasktune/templates/fewglue.py. One seed (see the script's docstring). Note that "
            "selecting the best evaluation on dev32 and reporting dev32 is optimistic, as in FewGLUE practice.\n\n"
            + table(rows, cols)
            + "\n\n### Stability across manual templates (SST-2, first 300 dev sentences)\n\n"
            f"Std of accuracy across the 4 templates: zero-shot **{spread['zero-shot']:.3f}**, P-tuning "
            f"**{spread['P-tuning']:.3f}** ({args.steps} steps, batch 16, 1,000 training sentences).\n\n"
            + table(stab, list(stab[0])))
    write_section("fewglue_stability", "P-tuning vs PET-style fine-tuning on FewGLUE, and template stability",
                  f"python benchmarks/fewglue_and_stability.py --steps {args.steps} --ft-steps {args.ft_steps}",
                  body, {"fewglue": rows, "stability": stab, "std": spread})


if __name__ == "__main__":
    main()
