"""Table-to-text with the embedded model: prefix tuning vs prompt tuning vs fine-tuning at the
same budget, BLEU / ROUGE-L with beam 5, and decoding speed greedy vs beam.

    python benchmarks/e2e_generation.py [--steps 150] [--dataset e2e|webnlg]

E2E: ../shared/data/e2e (table -> text; low-data: our split of the official dev set).
WebNLG: ../shared/data/webnlg (triples, joined with " ; " -> texts; each reference is a
training pair, references are regrouped per source for evaluation).
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
from tasktune.methods import FineTuningConfig, PrefixTuningConfig, PromptTuningConfig, ZeroShotConfig  # noqa: E402
from tasktune.train import TrainConfig, train  # noqa: E402

from report import table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# dataset: (source field, target field, template, prefix init words, prompt init text)
DATASETS = {"e2e": ("table", "text", "Table: {table}\nText:{answer}", "table-to-text:",
                    "Describe the restaurant in one sentence."),
            "webnlg": ("triples", "texts", "Triples: {triples}\nText:{answer}", "triples-to-text:",
                       "Describe the facts in one sentence.")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--tables", type=int, default=0, help="valid sources reported (0: all)")
    ap.add_argument("--select-tables", type=int, default=15, help="train sources held out to select checkpoints")
    ap.add_argument("--dataset", default="e2e", choices=list(DATASETS))
    args = ap.parse_args()
    source, target, template, prefix_words, prompt_text = DATASETS[args.dataset]
    data = load_splits(str(DATA / args.dataset), explode=target if args.dataset == "webnlg" else None)
    valid_tables = list(dict.fromkeys(ex.fields[source] for ex in data.dev))
    valid_tables = valid_tables[: args.tables] if args.tables else valid_tables
    valid = [ex for ex in data.dev if ex.fields[source] in set(valid_tables)]
    # checkpoints are selected on whole sources held out of train, never on the valid sources reported
    train_tables = list(dict.fromkeys(ex.fields[source] for ex in data.train))
    held = set(train_tables[-args.select_tables:])
    select = [ex for ex in data.train if ex.fields[source] in held]
    train_rows = [ex for ex in data.train if ex.fields[source] not in held]
    runs = [("zero-shot", ZeroShotConfig(), 0.0, "auto"),
            ("prefix-tuning", PrefixTuningConfig(prefix_length=10, reparam=True,
                                                 prefix_init="text", prefix_init_text=prefix_words), 5e-3, "auto"),
            ("prompt-tuning", PromptTuningConfig(prompt_length=20, init="text", init_text=prompt_text), 3e-2, "auto"),
            ("fine-tuning", FineTuningConfig(), 5e-5, "float32")]
    rows = []
    for method, mcfg, lr, dtype in runs:
        bb = load_backbone("smollm2-135m", dtype)
        task = build_task(bb, method, mcfg, template, None, max_length=160, objective="generation",
                          target_field=target)
        t0 = time.perf_counter()
        summary = {"tokens_per_second": 0.0}
        size = 0
        if method != "zero-shot":
            cfg = TrainConfig(max_steps=args.steps, batch_size=8, lr=lr, max_length=160, eval_every=50,
                              save_every=10**9, log_every=50, seed=0)
            with tempfile.TemporaryDirectory() as out:
                summary = train(task, train_rows, select, cfg, out, quiet=True)
                size = (Path(out) / "weights.safetensors").stat().st_size
        train_s = time.perf_counter() - t0
        beam = task.evaluate_generation(valid, beams=5, max_new_tokens=64)
        greedy = task.evaluate_generation(valid[:40], beams=1, max_new_tokens=64)
        rows.append({"method": method, "BLEU": beam["bleu"], "ROUGE-L": beam["rouge_l"],
                     "trainable": task.module.trainable_parameters(), "artifact bytes": size,
                     "train s": round(train_s), "train real tok/s": summary["tokens_per_second"],
                     "beam5 tok/s": beam["tokens_per_second"], "greedy tok/s": greedy["tokens_per_second"],
                     "dtype": str(bb.dtype).split(".")[-1], "sample": beam["samples"][0]["output"][:90]})
        print(rows[-1], flush=True)
        del task, bb
    body = (f"Train: ../shared/data/{args.dataset}/train.jsonl less {len(held)} held-out sources "
            f"({len(train_rows):,} source-reference pairs); {args.steps} steps, batch 8, "
            "AdamW, 10% warmup + linear decay, best of evaluations every 50 steps by teacher-forced NLL on the "
            f"{len(select)} pairs of the held-out train sources (selection never sees a reported source). "
            f"Reported: {len(valid_tables)} valid sources (all of them unless --tables; references grouped per "
            "source), beam 5, "
            "length penalty 1, max 64 new tokens; BLEU with sacrebleu (multi-reference), ROUGE-L with rouge-score. "
            "METEOR / NIST / CIDEr are not computed (no maintained package here without Java or WordNet data). "
            f"Learning rates: prefix 5e-3 (reparametrised, P' initialised from the embeddings of '{prefix_words}'), "
            "prompt 3e-2, fine-tuning 5e-5 (fp32 master weights, bf16 autocast). Greedy speed on 40 sources.\n\n"
            + table(rows, list(rows[0])))
    title = {"e2e": "E2E table-to-text", "webnlg": "WebNLG triples-to-text"}[args.dataset]
    write_section(f"{args.dataset}_generation", f"{title}: prefix vs prompt vs fine-tuning (embedded SmolLM2-135M)",
                  f"python benchmarks/e2e_generation.py --steps {args.steps} --tables {args.tables} "
                  f"--select-tables {args.select_tables} --dataset {args.dataset}", body, rows)


if __name__ == "__main__":
    main()
