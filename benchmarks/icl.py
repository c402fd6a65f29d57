"""In-context learning: speed of demonstration KV reuse, and the feature-bias probe.

    python benchmarks/icl.py [--probe-n 40] [--seeds 3]

1. 16-shot SST-2 (balanced demonstrations from train, seed 0) on 64 dev sentences:
   examples/s with the shared-prefix KV cache vs re-encoding the demonstrations per input,
   same batches (32), and the accuracy of both (must match).
2. h1/h2 accuracy (Si et al. 2023) on the four released BoolQ sets and on SST-2 sentiment (h1)
   vs length (h2), with and without each intervention, over demonstration seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task
from tasktune.data import load_splits  # noqa: E402
from tasktune.data.readers import read_examples  # noqa: E402
from tasktune.icl.features import make_feature  # noqa: E402
from tasktune.icl.probe import INTERVENTIONS, ProbeConfig, plot, run_probe  # noqa: E402
from tasktune.icl.probe_set import build_from_examples, load_released  # noqa: E402
from tasktune.methods import InContext, InContextConfig  # noqa: E402
from tasktune.task import Task  # noqa: E402

from report import table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "Review: {text}\nSentiment:{answer}"


def speed(bb) -> tuple[list[dict], str]:
    data = load_splits(str(DATA / "sst2"))
    cfg = InContext.fit_config(InContextConfig(shots=16), data.train, data.labels, seed=0)
    task = build_task(bb, "in-context", cfg, TEMPLATE, data.labels, max_length=2048)
    plain = Task(bb, task.module, task.template, task.verbalizer, task.objective, 2048, reuse_prefix=False)
    dev = data.dev[:64]
    rows = []
    for name, t in (("re-encode demonstrations", plain), ("KV cache of demonstrations", task)):
        t.evaluate(dev[:4])  # warm-up (and the prefix KV for the cached task)
        t0 = time.perf_counter()
        m = t.evaluate(dev, 32)
        rows.append({"path": name, "examples/s": len(dev) / (time.perf_counter() - t0), "accuracy": m["accuracy"],
                     "prompt tokens": len(t.encoder.render(dev[0])[0])})
        print(rows[-1], flush=True)
    ratio = rows[1]["examples/s"] / rows[0]["examples/s"]
    accs = f"accuracy {rows[1]['accuracy']:.3f} vs {rows[0]['accuracy']:.3f}"
    return rows, f"KV reuse speed-up: **{ratio:.1f}x** ({accs})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe-n", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    bb = load_backbone("smollm2-135m")
    speed_rows, headline = speed(bb)
    results, rows = [], []
    base = dict(shots=16, disambig=4, seeds=args.seeds, n_test=args.probe_n, n_agree=args.probe_n // 2)
    sets = [(load_released(p), ProbeConfig(**base)) for p in sorted((DATA / "ambig").glob("*.json"))]
    sst = read_examples(DATA / "sst2" / "train.jsonl", require_label=True)
    sst_set = build_from_examples("sst2: sentiment vs length", sst, make_feature("label=positive", sst),
                                  make_feature("length", sst))
    sets.append((sst_set, ProbeConfig(**base, template=TEMPLATE, meaningful_words=(" negative", " positive"),
                                      instruction="Classify the sentiment of the review: 1 means positive, "
                                                  "0 means negative.")))
    for ps, cfg in sets:
        res = run_probe(bb, ps, cfg, INTERVENTIONS)
        results.append(res)
        for name, r in res["results"].items():
            rows.append({"probe set": ps.name, "intervention": name,
                         "h1 acc": f"{r['h1_accuracy']:.3f} ± {r['h1_accuracy_std']:.3f}",
                         "h2 acc": f"{r['h2_accuracy']:.3f} ± {r['h2_accuracy_std']:.3f}",
                         "agreeing acc": f"{r['agreeing_accuracy']:.3f}"})
            print(rows[-1], flush=True)
    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    plot(results, str(ROOT / "docs" / "img" / "icl_probe.png"))
    body = ("### Demonstration KV reuse (16-shot SST-2, 64 dev sentences, batch 32)\n\n" + headline + "\n\n"
            + table(speed_rows, list(speed_rows[0])) + "\n\n### Feature-bias probe\n\n"
            f"16 demonstrations (8 with h1=h2=1, 8 with h1=h2=0), {args.seeds} demonstration seeds (mean ± std), "
            f"{args.probe_n} test items per disambiguating cell (h1≠h2) and {args.probe_n // 2} per agreeing cell. "
            "Label words ' 0'/' 1' unless the intervention is 'verbalizer' (meaningful words); 'instruction' names "
            "h1; 'disambig' replaces 4 demonstrations by disambiguating ones labelled by h1 (and drops them from "
            "the test pool). h1 = the answer for BoolQ sets, sentiment for SST-2; h2 = the set's competing feature "
            "(for SST-2: longer than the median in words). Plot: docs/img/icl_probe.png.\n\n"
            + table(rows, list(rows[0])))
    write_section("icl", "In-context learning: KV reuse and the feature-bias probe (embedded SmolLM2-135M)",
                  f"python benchmarks/icl.py --probe-n {args.probe_n} --seeds {args.seeds}", body,
                  {"speed": speed_rows, "probe": results})


if __name__ == "__main__":
    main()
